"""The guide's "Raw Script Configuration": building Scripts and what they would run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import nemo_run_k8s as run

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def bash_syntax_ok(text: str, tmp_path: Path) -> None:
    """`bash -n`: the script text parses as bash (nothing runs)."""
    path = tmp_path / "check.sh"
    path.write_text(text)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- file-based scripts


def test_file_script():
    script = run.Script("./scripts/train_model.sh")
    assert script.path == "./scripts/train_model.sh"
    assert script.inline == ""  # NeMo-Run's default: an unset field reads ""
    assert script.name == "train_model.sh"
    assert script.command() == ["bash", "SCRIPT"]
    assert script.describe() == "bash ./scripts/train_model.sh"


def test_file_script_with_environment_variables():
    script = run.Script(
        "./scripts/train_model.sh",
        env_vars={
            "CUDA_VISIBLE_DEVICES": "0,1,2,3",
            "PYTHONPATH": "/path/to/code",
            "DATA_PATH": "/path/to/data",
        },
    )
    assert script.env_vars == {
        "CUDA_VISIBLE_DEVICES": "0,1,2,3",
        "PYTHONPATH": "/path/to/code",
        "DATA_PATH": "/path/to/data",
    }
    assert script.describe() == (
        "CUDA_VISIBLE_DEVICES=0,1,2,3 PYTHONPATH=/path/to/code DATA_PATH=/path/to/data "
        "bash ./scripts/train_model.sh"
    )


def test_file_script_with_arguments():
    script = run.Script(
        "./scripts/train_model.sh", args=["--model-size", "8b", "--batch-size", "512"]
    )
    assert script.command("/job/train_model.sh") == [
        "bash",
        "/job/train_model.sh",
        "--model-size",
        "8b",
        "--batch-size",
        "512",
    ]
    assert script.describe() == "bash ./scripts/train_model.sh --model-size 8b --batch-size 512"


def test_describe_quotes_what_a_shell_would_split():
    script = run.Script("my scripts/run.sh", env_vars={"MSG": "a b"}, args=["x; rm -rf /", "$HOME"])
    assert script.describe() == "MSG='a b' bash 'my scripts/run.sh' 'x; rm -rf /' '$HOME'"


def test_file_script_text_is_read_from_the_file(tmp_path: Path):
    path = tmp_path / "train_model.sh"
    path.write_text("#!/bin/bash\necho train\n")
    assert run.Script(path).text() == "#!/bin/bash\necho train\n"
    with pytest.raises(run.ConfigError, match=r"cannot read '.*nope\.sh'"):
        run.Script(tmp_path / "nope.sh").text()


# --------------------------------------------------------------------------- inline scripts


SIMPLE_INLINE = """
#!/bin/bash
set -e

echo "Starting training..."
export CUDA_VISIBLE_DEVICES=0,1,2,3
export PYTHONPATH=/path/to/code

python train.py \
    --model-size 8b \
    --batch-size 512 \
    --learning-rate 0.001 \
    --max-epochs 100
"""

COMPLEX_INLINE = """
#!/bin/bash
set -e

# Setup environment
source /opt/conda/etc/profile.d/conda.sh
conda activate nemo

# Download data if not exists
if [ ! -d "/data/dataset" ]; then
    echo "Downloading dataset..."
    python download_data.py --output /data/dataset
fi

# Preprocess data
echo "Preprocessing data..."
python preprocess.py \
    --input /data/dataset \
    --output /data/processed \
    --tokenizer llama-tokenizer

# Train model
echo "Starting training..."
python train.py \
    --model-size 8b \
    --data-path /data/processed \
    --batch-size 512 \
    --learning-rate 0.001 \
    --max-epochs 100 \
    --checkpoint-dir /checkpoints

# Evaluate model
echo "Evaluating model..."
python evaluate.py \
    --model-path /checkpoints/best \
    --test-data /data/test
"""


@needs_bash
def test_simple_inline_script(tmp_path: Path):
    inline_script = run.Script(inline=SIMPLE_INLINE)
    text = inline_script.text()
    # The guide puts a newline before #!/bin/bash: the shebang must still be the first line.
    assert text.startswith("#!/bin/bash\nset -e\n")
    # A backslash-newline inside a non-raw Python string joins the lines.
    assert "python train.py     --model-size 8b     --batch-size 512" in text
    assert text.endswith("--max-epochs 100\n")
    bash_syntax_ok(text, tmp_path)
    assert inline_script.path == ""  # NeMo-Run's default: an unset field reads ""
    assert inline_script.command() == ["bash", "SCRIPT"]
    assert inline_script.describe() == f"bash '<inline script>'\n--- <inline script> ---\n{text}"


@needs_bash
def test_complex_inline_script(tmp_path: Path):
    complex_script = run.Script(inline=COMPLEX_INLINE)
    text = complex_script.text()
    assert text.splitlines()[0] == "#!/bin/bash"
    assert 'if [ ! -d "/data/dataset" ]; then' in text
    evaluate = "python evaluate.py     --model-path /checkpoints/best     --test-data /data/test"
    assert evaluate in text
    bash_syntax_ok(text, tmp_path)


def create_training_script(
    model_size: str, batch_size: int, learning_rate: float, max_epochs: int
) -> run.Script:
    """Create a parameterized training script."""
    script_content = f"""
#!/bin/bash
set -e

# Training parameters
MODEL_SIZE={model_size}
BATCH_SIZE={batch_size}
LEARNING_RATE={learning_rate}
MAX_EPOCHS={max_epochs}

echo "Training configuration:"
echo "  Model size: $MODEL_SIZE"
echo "  Batch size: $BATCH_SIZE"
echo "  Learning rate: $LEARNING_RATE"
echo "  Max epochs: $MAX_EPOCHS"

# Execute training
python train.py \\
    --model-size $MODEL_SIZE \\
    --batch-size $BATCH_SIZE \\
    --learning-rate $LEARNING_RATE \\
    --max-epochs $MAX_EPOCHS \\
    --checkpoint-dir /checkpoints
"""
    return run.Script(inline=script_content)


@needs_bash
def test_parameterized_script_runs_with_its_values(tmp_path: Path):
    script = create_training_script(
        model_size="8b", batch_size=512, learning_rate=0.001, max_epochs=100
    )
    text = script.text()
    assert "MODEL_SIZE=8b\nBATCH_SIZE=512\nLEARNING_RATE=0.001\nMAX_EPOCHS=100\n" in text
    assert "python train.py \\\n    --model-size $MODEL_SIZE \\\n" in text
    bash_syntax_ok(text, tmp_path)

    # Run it with a stand-in `python` on PATH that prints the argv it got.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg=$a"; done\n')
    fake.chmod(0o755)
    path = tmp_path / "train.sh"
    path.write_text(text)
    proc = subprocess.run(
        script.command(str(path)),
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "  Model size: 8b\n  Batch size: 512\n  Learning rate: 0.001\n" in proc.stdout
    assert "arg=train.py\narg=--model-size\narg=8b\narg=--batch-size\narg=512\n" in proc.stdout
    assert "arg=--checkpoint-dir\narg=/checkpoints\n" in proc.stdout


def create_pipeline_script() -> run.Script:
    """Create a complete ML pipeline script."""
    return run.Script(
        inline="""
#!/bin/bash
set -e

# Stage 1: Data preparation
echo "=== Stage 1: Data Preparation ==="
python prepare_data.py \
    --input /data/raw \
    --output /data/processed \
    --tokenizer llama-tokenizer

# Stage 2: Model training
echo "=== Stage 2: Model Training ==="
python train.py \
    --model-size 8b \
    --data-path /data/processed \
    --batch-size 512 \
    --learning-rate 0.001 \
    --max-epochs 100 \
    --checkpoint-dir /checkpoints

# Stage 3: Model evaluation
echo "=== Stage 3: Model Evaluation ==="
python evaluate.py \
    --model-path /checkpoints/best \
    --test-data /data/test \
    --output /results/evaluation.json

# Stage 4: Model deployment preparation
echo "=== Stage 4: Deployment Preparation ==="
python export_model.py \
    --model-path /checkpoints/best \
    --output /deployment/model.pt \
    --format torchscript

echo "Pipeline completed successfully!"
"""
    )


@needs_bash
def test_multi_stage_script(tmp_path: Path):
    script = create_pipeline_script()
    text = script.text()
    stages = [line for line in text.splitlines() if line.startswith('echo "=== Stage')]
    assert len(stages) == 4
    assert text.startswith("#!/bin/bash\n")
    assert text.endswith('echo "Pipeline completed successfully!"\n')
    bash_syntax_ok(text, tmp_path)


# --------------------------------------------------------------------------- argv, not a shell


@needs_bash
def test_args_reach_the_script_as_argv_entries_and_run_nothing(tmp_path: Path):
    marker = tmp_path / "pwned"
    script = run.Script(
        inline='printf "%s\\n" "$#" "$1" "$2" "$GREETING"\n',
        args=[f"x; touch {marker}", f"$(touch {marker})"],
        env_vars={"GREETING": "hello world"},
    )
    path = tmp_path / "s.sh"
    path.write_text(script.text())
    proc = subprocess.run(
        script.command(str(path)),
        capture_output=True,
        text=True,
        env={**os.environ, **script.env_vars},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "2",
        f"x; touch {marker}",
        f"$(touch {marker})",
        "hello world",
    ]
    assert not marker.exists()


def test_scripts_compare_by_content():
    assert run.Script("a.sh", args=["1"]) == run.Script("a.sh", args=["1"])
    assert run.Script("a.sh", args=["1"]) != run.Script("a.sh", args=["2"])
    assert run.Script(inline="\n  echo hi\n") == run.Script(inline="echo hi")
    assert repr(run.Script("a.sh", args=["1"])) == "Script(path='a.sh', args=['1'])"
