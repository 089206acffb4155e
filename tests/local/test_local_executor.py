"""LocalExecutor and run.Job as a user sees them: submit, run, results, logs, cancel, reattach."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nemo_run_k8s as run
from tests.conftest import child_env, jobs_created

GUIDE = Path("/work/shared/seeds/000_a534089e3b241dab.txt")


def add(a: int, b: int = 1) -> int:
    return a + b


def wait_for_gate(gate: str) -> str:
    while not os.path.exists(gate):
        time.sleep(0.02)
    return "through"


def crash(reason: str) -> None:
    raise RuntimeError(f"training diverged: {reason}")


def read_env(name: str) -> str | None:
    return os.environ.get(name)


def chatty(lines: int, pause: float) -> None:
    for i in range(lines):
        print(f"step {i}")  # no flush: the job's output must still stream
        time.sleep(pause)


def sleep_forever(marker: str) -> None:
    Path(marker).touch()
    time.sleep(300)


class Trainer:
    def __init__(self, epochs: int = 1, lr: float = 0.1):
        self.epochs, self.lr = epochs, lr

    def __call__(self) -> dict[str, float]:
        return {"epochs": self.epochs, "lr": self.lr}


def executor(**options: object) -> run.LocalExecutor:
    """A LocalExecutor whose jobs find this interpreter as `python` (the guide's scripts use it)."""
    env = {"PATH": child_env()["PATH"]}
    env.update(options.pop("env_vars", {}))  # type: ignore[arg-type]
    return run.LocalExecutor(env_vars=env, **options)  # type: ignore[arg-type]


def process_group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# --------------------------------------------------------------------------- Python tasks


def test_submit_returns_at_once_and_result_comes_back(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job = run.submit(run.Partial(wait_for_gate, gate=str(gate)), executor())
    assert isinstance(job, run.Job)
    assert job.state() is run.JobState.RUNNING  # the task is blocked on the gate
    assert job.wait(timeout=0.2) is run.JobState.RUNNING
    gate.touch()
    assert job.result(timeout=30) == "through"
    assert job.state() is run.JobState.SUCCEEDED
    assert job.exception() is None
    assert job.id.startswith("wait-for-gate-")


def test_run_partial_and_config_of_callable_class() -> None:
    assert run.run(run.Partial(add, a=40, b=2), executor()).result() == 42
    job = run.run(run.Config(Trainer, epochs=3, lr=0.5), executor())
    assert job.result() == {"epochs": 3, "lr": 0.5}


def test_function_from_unimportable_test_module_ships_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_train.py").write_text(
        textwrap.dedent(
            """
            import sys

            def train(steps):
                return {"loss": 1.0 / steps, "importable": "user_train" in sys.modules}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    train = importlib.import_module("user_train").train
    # A new interpreter, as in a container: it cannot import user_train (a fork could).
    job = run.submit(run.Partial(train, steps=4), executor(workdir="/", fork=False))
    assert job.result(timeout=30) == {"loss": 0.25, "importable": False}


def test_env_vars_reach_the_job() -> None:
    task = run.Partial(read_env, name="WANDB_MODE")
    job = run.run(task, executor(env_vars={"WANDB_MODE": "off"}))
    assert job.result() == "off"


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "new-interpreter"])
def test_pythonpath_of_env_vars_is_kept_after_nemo_run_k8s(tmp_path: Path, fork: bool) -> None:
    task = run.Partial(read_env, name="PYTHONPATH")
    job = run.run(task, executor(env_vars={"PYTHONPATH": str(tmp_path)}, fork=fork))
    entries = job.result().split(os.pathsep)
    assert entries[0] == str(Path(run.__file__).resolve().parents[1])
    assert str(tmp_path) in entries[1:]


def test_run_of_failing_task_raises_job_failed_with_remote_traceback() -> None:
    with pytest.raises(run.JobFailed) as info:
        run.run(run.Partial(crash, reason="nan at step 7"), executor())
    message = str(info.value)
    assert "FAILED" in message
    assert "Traceback (most recent call last)" in message
    assert "in crash" in message
    assert message.count("RuntimeError: training diverged: nan at step 7") == 1
    assert info.value.state is run.JobState.FAILED
    assert "in crash" in info.value.traceback

    job = run.list_jobs()[0]
    assert job.state() is run.JobState.FAILED
    assert isinstance(job.exception(), run.JobFailed)
    with pytest.raises(run.JobFailed, match="nan at step 7"):
        job.result()


def test_unpicklable_task_launches_nothing(home: Path) -> None:
    import threading

    task = run.Partial(add, a=run.Config(dict, lock=threading.Lock()))
    with pytest.raises(run.BundleError, match=r"<root>\.a\.lock: cannot pickle '_thread\.lock'"):
        run.submit(task, executor())
    assert jobs_created(home) == []


def test_dryrun_is_printable_and_has_no_side_effects(home: Path) -> None:
    plan = run.dryrun(run.Partial(add, a=1, b=2), executor())
    text = str(plan)
    assert "job 'add'" in text
    assert "# bundle sha256: " in text
    assert "#   a = 1" in text and "#   b = 2" in text
    assert "nemo_run_k8s.runtime.entrypoint" in text
    assert "start: as a fork of the submitting process" in text  # how it would start
    assert "start: '`command`, a new interpreter'" in str(
        run.dryrun(run.Partial(add, a=1), executor(fork=False))
    )
    assert jobs_created(home) == []
    assert not (home / "jobs.sqlite3").exists()


def test_invalid_options_are_refused() -> None:
    with pytest.raises(run.InvalidOptionError, match="nproc_per_node"):
        run.LocalExecutor(nproc_per_node=0)
    with pytest.raises(run.InvalidOptionError, match="must be a string"):
        run.LocalExecutor(env_vars={"SEED": 1})  # type: ignore[dict-item]
    with pytest.raises(
        run.InvalidOptionError, match=r"'nprocs_per_node' \(did you mean 'nproc_per_node'\?\)"
    ):
        run.LocalExecutor(nprocs_per_node=2)  # type: ignore[call-arg]
    with pytest.raises(
        run.InvalidOptionError, match=r"'namespaces' \(did you mean 'namespace'\?\)"
    ):
        run.KubernetesExecutor(namespaces="ml")  # type: ignore[call-arg]


# --------------------------------------------------------------------------- scripts (the guide)


def test_file_script_with_env_vars_and_args(tmp_path: Path) -> None:
    script_file = tmp_path / "scripts" / "train_model.sh"
    script_file.parent.mkdir()
    script_file.write_text(
        textwrap.dedent(
            """\
            #!/bin/bash
            set -e
            echo "devices=$CUDA_VISIBLE_DEVICES data=$DATA_PATH"
            echo "args: $*"
            """
        )
    )
    script = run.Script(
        str(script_file),
        env_vars={"CUDA_VISIBLE_DEVICES": "0,1,2,3", "DATA_PATH": "/path/to/data"},
        args=["--model-size", "8b", "--batch-size", "512"],
    )
    job = run.run(script, executor())
    assert job.state() is run.JobState.SUCCEEDED
    assert list(job.logs()) == [
        "devices=0,1,2,3 data=/path/to/data",
        "args: --model-size 8b --batch-size 512",
    ]


TRAIN_PY = """\
import argparse, os, sys
parser = argparse.ArgumentParser()
for flag in ("--model-size", "--batch-size", "--learning-rate", "--max-epochs",
             "--data-path", "--checkpoint-dir", "--input", "--output", "--tokenizer",
             "--model-path", "--test-data", "--format"):
    parser.add_argument(flag)
args = parser.parse_args()
print(os.path.basename(sys.argv[0]), {k: v for k, v in vars(args).items() if v is not None})
print("  devices:", os.environ.get("CUDA_VISIBLE_DEVICES"))
if args.output:
    open(args.output, "w").write("done")
"""


def test_inline_script_of_the_guides_shape_runs(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN_PY)
    script = run.Script(
        inline="""
#!/bin/bash
set -e

echo "Starting training..."
export CUDA_VISIBLE_DEVICES=0,1,2,3
export PYTHONPATH=/path/to/code

python train.py \\
    --model-size 8b \\
    --batch-size 512 \\
    --learning-rate 0.001 \\
    --max-epochs 100
"""
    )
    job = run.run(script, executor(workdir=str(tmp_path)))
    assert list(job.logs()) == [
        "Starting training...",
        "train.py {'model_size': '8b', 'batch_size': '512', 'learning_rate': '0.001', "
        "'max_epochs': '100'}",
        "  devices: 0,1,2,3",
    ]


def test_multi_stage_pipeline_of_the_guides_shape_runs(tmp_path: Path) -> None:
    for name in ("prepare_data.py", "train.py", "evaluate.py", "export_model.py"):
        (tmp_path / name).write_text(TRAIN_PY)
    out = tmp_path / "out"
    script = run.Script(
        inline=f"""
#!/bin/bash
set -e

echo "=== Stage 1: Data Preparation ==="
python prepare_data.py --input {out}/raw --output {out}/processed --tokenizer llama-tokenizer
echo "=== Stage 2: Model Training ==="
python train.py --model-size 8b --data-path {out}/processed --checkpoint-dir {out}/ckpt
echo "=== Stage 3: Model Evaluation ==="
python evaluate.py --model-path {out}/ckpt/best --output {out}/evaluation.json
echo "=== Stage 4: Deployment Preparation ==="
python export_model.py --model-path {out}/ckpt/best --output {out}/model.pt --format torchscript
echo "Pipeline completed successfully!"
"""
    )
    out.mkdir()
    job = run.run(script, executor(workdir=str(tmp_path)))
    logs = list(job.logs())
    assert [line for line in logs if line.startswith("===")] == [
        "=== Stage 1: Data Preparation ===",
        "=== Stage 2: Model Training ===",
        "=== Stage 3: Model Evaluation ===",
        "=== Stage 4: Deployment Preparation ===",
    ]
    assert logs[-1] == "Pipeline completed successfully!"
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "model.pt", "processed"]


def _guide_inline_scripts() -> list[str]:
    """The inline script texts of the guide's "Inline Scripts" section, verbatim."""
    text = GUIDE.read_text()
    section = text.split("### Inline Scripts", 1)[1].split("### Script Configuration", 1)[0]
    return [block.split('"""', 1)[0] for block in section.split('inline="""')[1:]]


@pytest.mark.skipif(not GUIDE.exists(), reason="the guide is not on this machine")
def test_guides_inline_scripts_run_until_their_first_missing_program(tmp_path: Path) -> None:
    simple, complex_ = _guide_inline_scripts()
    assert "python train.py" in simple and "conda activate nemo" in complex_

    job = run.submit(run.Script(inline=simple), executor(workdir=str(tmp_path)))
    assert job.wait(timeout=30) is run.JobState.FAILED
    logs = "\n".join(job.logs())
    assert logs.startswith("Starting training...")
    assert "can't open file" in logs and "train.py" in logs
    with pytest.raises(run.JobFailed, match=r"train\.py"):
        job.result()

    job = run.submit(run.Script(inline=complex_), executor(workdir=str(tmp_path)))
    assert job.wait(timeout=30) is run.JobState.FAILED
    logs = "\n".join(job.logs())
    assert "/opt/conda/etc/profile.d/conda.sh: No such file or directory" in logs
    assert "Preprocessing data..." not in logs  # set -e stopped it at the first failure


def test_failing_script_is_failed_with_its_stderr_in_the_logs() -> None:
    script = run.Script(inline="echo loading\necho 'CUDA error: out of memory' >&2\nexit 2\n")
    job = run.submit(script, executor())
    assert job.wait(timeout=30) is run.JobState.FAILED
    assert list(job.logs())[:2] == ["loading", "CUDA error: out of memory"]
    with pytest.raises(run.JobFailed, match="CUDA error: out of memory"):
        job.result()


def test_shell_metacharacters_in_args_run_nothing(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    evil = f"x; touch {pwned}"
    script = run.Script(inline='printf "%s\\n" "$#" "$1"\n', args=[evil])
    job = run.run(script, executor())
    assert list(job.logs()) == ["1", evil]
    assert not pwned.exists()


# --------------------------------------------------------------------------- logs, cancel, reattach


CHATTY_SCRIPT = """\
python - <<'EOF'
import time
for i in range(4):
    print(f"step {i}")
    time.sleep(0.4)
EOF
"""


@pytest.mark.parametrize("kind", ["partial", "script"])
def test_logs_follow_yields_lines_while_the_job_runs(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # as most users have it
    task = (
        run.Partial(chatty, lines=4, pause=0.4)
        if kind == "partial"
        else run.Script(inline=CHATTY_SCRIPT)
    )
    job = run.submit(task, executor())
    start = time.monotonic()
    seen = [(time.monotonic() - start, line) for line in job.logs(follow=True)]
    assert [line for _, line in seen] == ["step 0", "step 1", "step 2", "step 3"]
    first, last = seen[0][0], seen[-1][0]
    assert last - first >= 0.8, seen  # lines came as printed, not all at the end
    assert job.state() is run.JobState.SUCCEEDED


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "new-interpreter"])
@pytest.mark.parametrize("kind", ["partial", "script"])
def test_cancel_stops_a_sleeping_job_and_leaves_no_process(
    tmp_path: Path, kind: str, fork: bool
) -> None:
    marker = tmp_path / "started"
    task = (
        run.Partial(sleep_forever, marker=str(marker))
        if kind == "partial"
        else run.Script(inline=f"touch {marker}\nsleep 300\n")
    )
    job = run.submit(task, executor(fork=fork))
    assert job.record.handle["started"] == ("fork" if fork else "new interpreter")
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, list(job.logs())
        time.sleep(0.02)
    pgid = job.record.handle["pid"]
    assert len(process_group_members(pgid)) >= 2  # supervisor + entrypoint (+ sleep)

    start = time.monotonic()
    job.cancel()
    assert time.monotonic() - start < 5
    assert job.state() is run.JobState.CANCELLED
    assert process_group_members(pgid) == []
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cmdline_mentions(p, str(marker))]
    assert run.Job.from_id(job.id).record.state == "CANCELLED"


def _cmdline_mentions(proc_dir: Path, text: str) -> bool:
    try:
        return text.encode() in (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False


REATTACH = """
import sys, nemo_run_k8s as run
job = run.Job.from_id(sys.argv[1])
print(job.state().value)
print(job.result())
for line in job.logs():
    print("log:", line)
"""


def test_reattach_from_a_fresh_process_sees_state_result_and_logs() -> None:
    job = run.run(run.Partial(chatty, lines=2, pause=0.0), executor())
    out = subprocess.run(
        [sys.executable, "-c", REATTACH, job.id[:-3]],  # an unambiguous prefix works too
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["SUCCEEDED", "None", "log: step 0", "log: step 1"]


SUBMIT_AND_LEAVE = """
import sys, nemo_run_k8s as run
from tests.local.test_local_executor import sleep_forever
job = run.submit(run.Partial(sleep_forever, marker=sys.argv[1]), run.LocalExecutor())
print(job.id)
"""


def test_job_outlives_its_submitter_and_is_cancelled_from_another_process(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "started"
    out = subprocess.run(
        [sys.executable, "-c", SUBMIT_AND_LEAVE, str(marker)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    job = run.Job.from_id(out.stdout.strip())
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job.state() is run.JobState.RUNNING  # the submitter is gone, the job is not
    job.cancel()
    assert job.wait(timeout=5) is run.JobState.CANCELLED
    assert process_group_members(job.record.handle["pid"]) == []


SUBMIT_MANY = """
import sys, nemo_run_k8s as run
from tests.local.test_local_executor import add
for i in range(int(sys.argv[1])):
    print(run.submit(run.Partial(add, a=i), run.LocalExecutor(), name="burst").id, flush=True)
"""


def test_concurrent_submits_from_two_processes_stay_consistent() -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMIT_MANY, "10"],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    ids = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        ids += stdout.split()
    jobs = run.list_jobs()
    assert len(jobs) == 20
    assert sorted(j.id for j in jobs) == sorted(ids)
    assert len(set(ids)) == 20
    results = sorted(j.result(timeout=60) for j in jobs)
    assert results == sorted(list(range(1, 11)) * 2)


def test_unknown_job_id_says_where_it_looked(home: Path) -> None:
    with pytest.raises(run.JobNotFoundError, match="NEMO_RUN_K8S_HOME"):
        run.Job.from_id("no-such-job")


def test_job_directory_holds_bundle_logs_and_outcome() -> None:
    job = run.run(run.Partial(add, a=1), executor())
    job_dir = Path(job.record.job_dir)
    assert sorted(p.name for p in job_dir.iterdir()) == ["bundle", "exit.json", "logs", "output"]
    assert json.loads((job_dir / "exit.json").read_text()) == {
        "state": "SUCCEEDED",
        "reason": "",
        "exit_codes": {"0": 0},
    }
    assert (
        job.record.bundle_sha256
        == json.loads((job_dir / "bundle" / "manifest.json").read_text())["sha256"]
    )
