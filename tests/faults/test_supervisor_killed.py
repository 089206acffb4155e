"""Item 2: a local job whose supervisor is killed (kill -9, the OOM killer).

State follows the task: RUNNING while it runs, then its real outcome (from
rank 0's outcome file: the exit code died with the supervisor); ``cancel()``
still stops it. Before, the job turned FAILED at once, cancel did nothing and
the task's success was ignored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import nemo_run_k8s as run
from tests.faults.helpers import kill9, running, wait_for_file


def gated(started: str, gate: str, fail: bool = False) -> str:
    Path(started).write_text(str(os.getpid()))
    while not os.path.exists(gate):
        time.sleep(0.02)
    if fail:
        raise RuntimeError("diverged after the gate")
    return "through the gate"


@pytest.fixture(params=[True, False], ids=["forked", "new-interpreter"])
def started_job(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Starts a job that waits for a gate file; returns (job, task pid, gate path)."""

    def start(fail: bool = False) -> tuple[run.Job, int, Path]:
        started, gate = tmp_path / "started", tmp_path / "gate"
        task = run.Partial(gated, str(started), str(gate), fail)
        job = run.submit(task, run.LocalExecutor(fork=request.param))
        task_pid = int(wait_for_file(started))
        kill9(job.record.handle["pid"])  # the supervisor
        return job, task_pid, gate

    return start


def test_the_task_keeps_running_and_its_success_counts(started_job) -> None:  # type: ignore[no-untyped-def]
    job, task_pid, gate = started_job()
    assert running(task_pid)
    assert job.state() == run.JobState.RUNNING
    assert run.Job.from_id(job.id).state() == run.JobState.RUNNING
    gate.touch()
    assert job.wait() == run.JobState.SUCCEEDED
    assert job.result() == "through the gate"


def test_the_task_failure_counts(started_job) -> None:  # type: ignore[no-untyped-def]
    job, _, gate = started_job(fail=True)
    assert job.state() == run.JobState.RUNNING
    gate.touch()
    assert job.wait() == run.JobState.FAILED
    assert "supervisor was killed" in job.reason()
    with pytest.raises(run.JobFailed, match="diverged after the gate"):
        job.result()


def test_cancel_stops_the_task(started_job) -> None:  # type: ignore[no-untyped-def]
    job, task_pid, _ = started_job()
    assert job.state() == run.JobState.RUNNING
    job.cancel()
    assert not running(task_pid)
    assert job.state() == run.JobState.CANCELLED
    assert run.Job.from_id(job.id).state() == run.JobState.CANCELLED
