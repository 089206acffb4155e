"""``run.Script`` with NeMo-Run's fields (issue 19): entrypoint, m, env, to_command, get_name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nemo_run_k8s as run
from tests.conftest import child_env

ECHO_ARGV = "import sys, os\nprint(sys.argv[1:], os.environ.get('GREETING'))\n"


def test_a_py_file_runs_with_python():
    script = run.Script("train.py", args=["--lr", "0.1"])
    assert script.entrypoint == "python"
    assert script.command("/job/train.py") == [sys.executable, "/job/train.py", "--lr", "0.1"]
    assert script.describe() == "python train.py --lr 0.1"


def test_entrypoint_python_and_bash_are_accepted_as_given():
    assert run.Script("train.py", entrypoint="python").entrypoint == "python"
    as_bash = run.Script("train.py", entrypoint="bash")
    assert as_bash.command("/job/train.py") == ["bash", "/job/train.py"]
    assert run.Script("run.sh").entrypoint == "bash"
    assert run.Script(inline="echo hi").entrypoint == "bash"


def test_an_unknown_entrypoint_says_which_are_supported():
    with pytest.raises(run.ConfigError, match="entrypoint must be 'bash' or 'python', got 'zsh'"):
        run.Script("run.sh", entrypoint="zsh")


def test_m_runs_a_module_with_python_dash_m():
    script = run.Script("pkg.train", m=True, args=["--steps", "3"])
    assert script.entrypoint == "python"
    assert script.command("/ignored") == [sys.executable, "-m", "pkg.train", "--steps", "3"]
    assert script.text() == ""  # nothing to carry: the module is imported in the job
    assert script.describe() == "python -m pkg.train --steps 3"
    assert repr(script) == "Script(path='pkg.train', m=True, args=['--steps', '3'])"


def test_m_with_bash_or_inline_text_is_refused():
    with pytest.raises(run.ConfigError, match=r"run.Script\(m=True\) runs `python -m MODULE`"):
        run.Script("pkg.train", m=True, entrypoint="bash")
    with pytest.raises(run.ConfigError, match=r"give the module as path"):
        run.Script(inline="print(1)", m=True)


def test_env_is_another_name_for_env_vars():
    script = run.Script("train.sh", env={"GREETING": "hi"})
    assert script.env_vars == {"GREETING": "hi"}
    assert script.env == {"GREETING": "hi"}
    assert script == run.Script("train.sh", env_vars={"GREETING": "hi"})
    with pytest.raises(run.ConfigError, match="env_vars or env"):
        run.Script("train.sh", env={"A": "1"}, env_vars={"B": "2"})
    with pytest.raises(run.ConfigError, match="env_vars\\['N'\\] must be a string"):
        run.Script("train.sh", env={"N": 1})


def test_inline_and_path_default_to_empty_strings():
    file_script = run.Script("train.sh")
    assert file_script.inline == ""
    inline_script = run.Script(inline="echo hi")
    assert inline_script.path == ""
    assert run.Script("train.sh", inline="") == file_script


def test_to_command_gives_argv_entries_as_nemo_run_does():
    script = run.Script("train.py", args=["--name", "a b; rm -rf /"])
    assert script.to_command() == ["train.py", "--name", "a b; rm -rf /"]
    assert script.to_command(with_entrypoint=True) == [
        "python",
        "train.py",
        "--name",
        "a b; rm -rf /",
    ]
    module = run.Script("pkg.train", m=True, args=["-v"])
    assert module.to_command(with_entrypoint=True) == ["python", "-m", "pkg.train", "-v"]


def test_to_command_of_an_inline_script_passes_the_text_as_one_entry():
    script = run.Script(inline='echo "hello"\n')
    assert script.to_command() == ["-c", 'echo "hello"\n']
    assert script.to_command(with_entrypoint=True) == ["bash", "-c", 'echo "hello"\n']


def test_get_name():
    assert run.Script("scripts/train_model.sh").get_name() == "train_model.sh"
    assert run.Script(inline="  echo hello world\n").get_name() == "echo_hello"
    assert run.Script("pkg.train", m=True).get_name() == "pkg.train"


# --------------------------------------------------------------------------- jobs that run them


def local_executor(**env: str) -> run.LocalExecutor:
    return run.LocalExecutor(env_vars={"PATH": child_env()["PATH"], **env})


def test_a_python_file_script_runs_as_a_job_with_its_args_as_argv(tmp_path: Path):
    marker = tmp_path / "pwned"
    train = tmp_path / "train.py"
    train.write_text(ECHO_ARGV)
    script = run.Script(str(train), args=["--lr", f"x; touch {marker}"], env={"GREETING": "hi"})
    job = run.run(script, local_executor())
    assert job.state() is run.JobState.SUCCEEDED, list(job.logs())
    assert list(job.logs()) == [f"['--lr', 'x; touch {marker}'] hi"]
    assert not marker.exists()


def test_a_module_script_runs_as_a_job(tmp_path: Path):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(ECHO_ARGV)
    script = run.Script("mypkg.train", m=True, args=["--steps", "3"], env={"GREETING": "m"})
    job = run.run(script, local_executor(PYTHONPATH=str(tmp_path)))
    assert job.state() is run.JobState.SUCCEEDED, list(job.logs())
    assert list(job.logs()) == ["['--steps', '3'] m"]


def test_to_command_of_an_inline_script_passes_args_as_argv(tmp_path: Path):
    marker = tmp_path / "pwned"
    script = run.Script(inline='printf "%s\\n" "$#" "$1"\n', args=[f"; touch {marker}"])
    command = script.to_command(with_entrypoint=True)
    assert command[:3] == ["bash", "-c", script.inline]
    proc = subprocess.run(command, capture_output=True, text=True, env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1", f"; touch {marker}"]
    assert not marker.exists()
