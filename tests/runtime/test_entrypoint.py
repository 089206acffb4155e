"""The entrypoint (``python -m nemo_run_k8s.runtime.entrypoint BUNDLE``): checks, runs, exits."""

from __future__ import annotations

import base64
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import nemo_run_k8s as run
from nemo_run_k8s.bundle.files import make_bundle
from nemo_run_k8s.bundle.outcome import read_outcome
from tests.conftest import child_env

EXIT_OK, EXIT_TASK_FAILED, EXIT_SETUP_ERROR, EXIT_TERMINATED = 0, 1, 3, 143


def add(a: int, b: int = 1) -> dict[str, int]:
    return {"sum": a + b, "pid": os.getpid()}


def fail(message: str) -> None:
    raise ValueError(message)


def nap(seconds: float, marker: str) -> str:
    Path(marker).touch()
    time.sleep(seconds)
    return "woke up"


class Doubler:
    def __init__(self, factor: int = 2):
        self.factor = factor

    def __call__(self) -> int:
        return 21 * self.factor


def entrypoint(
    bundle: Path, output: Path | None = None, cwd: str = "/", **env: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nemo_run_k8s.runtime.entrypoint", str(bundle)]
    if output is not None:
        command += ["--output", str(output)]
    return subprocess.run(
        command, env=child_env(**env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def termination_log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.write_text("")
    return path


def test_partial_result_is_written_atomically(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(add, a=40, b=2), tmp_path / "b")
    proc = entrypoint(bundle.path, tmp_path / "out")
    assert proc.returncode == EXIT_OK, proc.stderr
    status, value = read_outcome(tmp_path / "out")
    assert status == "success"
    assert value["sum"] == 42
    assert value["pid"] != os.getpid()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.pkl"]


def test_config_of_callable_class_is_built_then_called(tmp_path: Path) -> None:
    bundle = make_bundle(run.Config(Doubler, factor=3), tmp_path / "b")
    proc = entrypoint(bundle.path, tmp_path / "out")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert read_outcome(tmp_path / "out") == ("success", 63)


def test_failing_task_exit_1_traceback_and_termination_log(
    tmp_path: Path, termination_log: Path
) -> None:
    long_message = "bad value " + "x" * 10_000 + " END"
    bundle = make_bundle(run.Partial(fail, message=long_message), tmp_path / "b")
    proc = entrypoint(
        bundle.path, tmp_path / "out", NEMO_RUN_K8S_TERMINATION_LOG=str(termination_log)
    )
    assert proc.returncode == EXIT_TASK_FAILED
    status, tb = read_outcome(tmp_path / "out")
    assert status == "error"
    assert "Traceback" in tb
    assert "in fail" in tb
    assert "ValueError: bad value" in tb
    assert "nemo_run_k8s/entrypoint.py" not in tb  # the user's frames only
    assert "ValueError: bad value" in proc.stderr
    reason = termination_log.read_bytes()
    assert 0 < len(reason) <= 4096
    assert reason.endswith(b" END\n")


def test_other_python_minor_version_is_refused_clearly(
    tmp_path: Path, termination_log: Path
) -> None:
    bundle = make_bundle(run.Partial(add, a=1), tmp_path / "b")
    manifest_file = bundle.path / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    other = f"3.{sys.version_info.minor - 1}.0"
    manifest["python"] = other
    manifest_file.write_text(json.dumps(manifest))  # the hash covers task.pkl, not the manifest

    proc = entrypoint(
        bundle.path, tmp_path / "out", NEMO_RUN_K8S_TERMINATION_LOG=str(termination_log)
    )
    assert proc.returncode == EXIT_SETUP_ERROR
    here = "{}.{}".format(*sys.version_info[:2])
    assert f"pickled with Python {other}" in proc.stderr
    assert f"Use a base image with Python 3.{sys.version_info.minor - 1}" in proc.stderr
    assert f"or submit from Python {here}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"pickled with Python {other}" in termination_log.read_text()
    assert not (tmp_path / "out").exists()


def test_corrupt_or_foreign_bundle_exits_3(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(add, a=1), tmp_path / "b")
    data = bytearray((bundle.path / "task.pkl").read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit
    (bundle.path / "task.pkl").write_bytes(bytes(data))
    proc = entrypoint(bundle.path)
    assert proc.returncode == EXIT_SETUP_ERROR
    assert "is corrupt" in proc.stderr and "resubmit" in proc.stderr

    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["format"] = 99
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    proc = entrypoint(bundle.path)
    assert proc.returncode == EXIT_SETUP_ERROR
    assert "bundle format 99 is not supported" in proc.stderr

    proc = entrypoint(tmp_path)
    assert proc.returncode == EXIT_SETUP_ERROR
    assert "has no manifest.json" in proc.stderr


def test_function_from_unimportable_module_runs_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "private_mod.py").write_text(
        textwrap.dedent(
            """
            import sys

            OFFSET = 100

            def compute(x):
                return {"value": x + OFFSET, "path_has_tmp": any("private" in p for p in sys.path)}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    compute = importlib.import_module("private_mod").compute
    bundle = make_bundle(run.Partial(compute, x=1), tmp_path / "b")

    # The job's interpreter cannot import the module...
    probe = subprocess.run(
        [sys.executable, "-c", "import private_mod"], env=child_env(), cwd="/", capture_output=True
    )
    assert probe.returncode != 0
    # ...and still runs its function.
    proc = entrypoint(bundle.path, tmp_path / "out")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert read_outcome(tmp_path / "out") == ("success", {"value": 101, "path_has_tmp": False})


def test_script_env_vars_and_args_as_argv(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    script = run.Script(
        inline="""
        #!/bin/bash
        set -e
        echo "argc=$#"
        printf 'arg=[%s]\\n' "$@"
        echo "greeting=$GREETING"
        """,
        env_vars={"GREETING": "hello world"},
        args=["--size", "8b", f"x; touch {pwned}"],
    )
    bundle = make_bundle(script, tmp_path / "b")
    proc = entrypoint(bundle.path, tmp_path / "out")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.splitlines() == [
        "argc=3",
        "arg=[--size]",
        "arg=[8b]",
        f"arg=[x; touch {pwned}]",
        "greeting=hello world",
    ]
    assert not pwned.exists()
    assert read_outcome(tmp_path / "out") == ("success", None)


def test_failing_script_exits_1_with_its_stderr(tmp_path: Path) -> None:
    script = run.Script(inline="echo 'disk is full' >&2\nexit 7\n")
    proc = entrypoint(make_bundle(script, tmp_path / "b").path, tmp_path / "out")
    assert proc.returncode == EXIT_TASK_FAILED
    assert "disk is full" in proc.stderr
    status, tb = read_outcome(tmp_path / "out")
    assert status == "error" and "exited with code 7" in tb


def test_only_rank_0_writes_the_outcome(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(add, a=1), tmp_path / "b")
    proc = entrypoint(bundle.path, tmp_path / "out", RANK="1")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert not (tmp_path / "out" / "result.pkl").exists()


def test_outcome_in_log_for_pods(tmp_path: Path) -> None:
    bundle = make_bundle(run.Partial(add, a=2, b=3), tmp_path / "b")
    proc = entrypoint(bundle.path, NEMO_RUN_K8S_OUTCOME_IN_LOG="1")
    assert proc.returncode == EXIT_OK, proc.stderr
    marker, data = proc.stdout.splitlines()[-1].split(" ", 1)
    assert marker == "NEMO_RUN_K8S_OUTCOME"
    status, value = cloudpickle.loads(base64.b64decode(data))
    assert (status, value["sum"]) == ("success", 5)


def _start(bundle: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nemo_run_k8s.runtime.entrypoint", str(bundle)],
        env=child_env(**env),
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["partial", "script"])
def test_sigterm_stops_the_task_promptly(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "started"
    task: Any = (
        run.Partial(nap, seconds=60, marker=str(marker))
        if kind == "partial"
        else run.Script(inline=f"touch {marker}\nsleep 60\necho after\n")
    )
    proc = _start(make_bundle(task, tmp_path / "b").path)
    _wait_for(marker)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - start < 30  # stopped, not waiting out the task's 60 s
    assert proc.returncode == EXIT_TERMINATED
    assert "stopped by SIGTERM" in stderr
