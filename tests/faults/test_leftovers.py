"""Item 9: nothing is left behind by a refused submission or a cancelled local job.

- A submission the backend refuses (no Docker engine, no kubeconfig) leaves no
  bundle directory (it had no record to find it by).
- A local job ends as a container does: its supervisor is a child subreaper,
  so a program the job started in a session of its own (``setsid``) is stopped
  by ``cancel()`` and when the job's main process exits. Limit: once the
  supervisor itself has been killed, such orphans belong to init (see
  ``executors/local/processes.py``).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import nemo_run_k8s as run
from tests.conftest import jobs_created
from tests.faults.helpers import running, wait_for_file


def hello() -> str:
    return "hello"


def test_no_docker_engine_leaves_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{home}/no-engine.sock")
    with pytest.raises(run.NemoRunError, match="cannot reach the Docker engine"):
        run.submit(run.Partial(hello), run.DockerExecutor())
    assert jobs_created(home) == []


def test_no_kubeconfig_leaves_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(home / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(run.SubmissionError):
        run.submit(
            run.Partial(hello), run.KubernetesExecutor(image_repo="registry.example.com/jobs")
        )
    assert jobs_created(home) == []


def test_a_refused_experiment_leaves_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{home}/no-engine.sock")
    exp = run.Experiment("sweep")
    exp.add(run.Partial(hello), run.DockerExecutor(), name="a")
    exp.add(run.Partial(hello), run.DockerExecutor(), name="b")
    with pytest.raises(run.NemoRunError, match="cannot reach the Docker engine"):
        exp.launch()
    assert jobs_created(home) == []


def start_in_own_session(pid_file: str, then_wait: bool) -> str:
    """Starts `sleep` in a session of its own (out of the job's process group)."""
    child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    Path(pid_file).write_text(str(child.pid))
    while then_wait:
        time.sleep(0.05)
    return "left it running"


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new-interpreter"])
def test_cancel_stops_a_grandchild_in_its_own_session(tmp_path: Path, fork: bool) -> None:
    pid_file = tmp_path / "grandchild"
    job = run.submit(
        run.Partial(start_in_own_session, str(pid_file), True), run.LocalExecutor(fork=fork)
    )
    grandchild = int(wait_for_file(pid_file))
    assert os.getsid(grandchild) == grandchild  # out of the job's group and session
    job.cancel()
    assert job.state() == run.JobState.CANCELLED
    assert not running(grandchild)


def test_what_a_finished_job_left_running_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    job = run.submit(run.Partial(start_in_own_session, str(pid_file), False), run.LocalExecutor())
    assert job.result() == "left it running"
    grandchild = int(pid_file.read_text())
    assert not running(grandchild)  # stopped before the job's end was recorded
    assert "stopped what the job left running" in job.log_tail()
