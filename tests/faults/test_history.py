"""Item 6: a recorded terminal state is final; missing files are named, not guessed about."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.paths import JobPaths
from nemo_run_k8s.records import Records


def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


def fail() -> None:
    raise RuntimeError("diverged")


def finished(task: object) -> run.Job:
    job = run.submit(task, run.LocalExecutor())
    job.wait()
    return job


def test_removing_exit_json_keeps_success() -> None:
    job = finished(run.Partial(add, 1, 2))
    assert job.state() == run.JobState.SUCCEEDED
    JobPaths(Path(job.record.job_dir)).exit_status.unlink()
    again = run.Job.from_id(job.id)
    assert again.state() == run.JobState.SUCCEEDED
    assert again.reason() == ""
    assert again.result() == 3
    assert Records().get(job.id).state == "SUCCEEDED"


def test_removing_the_job_directory_keeps_success_and_names_what_is_missing() -> None:
    job = finished(run.Partial(add, 1, 2))
    shutil.rmtree(job.record.job_dir)
    again = run.Job.from_id(job.id)
    assert again.state() == run.JobState.SUCCEEDED
    with pytest.raises(run.ResultMissingError, match=r"SUCCEEDED.*result\.pkl does not exist"):
        again.result()
    lines = list(again.logs())
    assert len(lines) == 1 and "node-0.log" in lines[0] and "no log" in lines[0]
    again.cancel()  # nothing left to stop; the state stays as recorded
    assert again.state() == run.JobState.SUCCEEDED


def test_a_failure_keeps_its_reason_after_its_files_are_gone() -> None:
    job = finished(run.Partial(fail))
    assert job.state() == run.JobState.FAILED
    reason = job.reason()
    assert "exited with code 1" in reason
    shutil.rmtree(job.record.job_dir)
    again = run.Job.from_id(job.id)
    assert again.state() == run.JobState.FAILED
    assert again.reason() == reason
    with pytest.raises(run.JobFailed, match="exited with code 1"):
        again.result()


def test_a_terminal_state_is_never_overwritten() -> None:
    job = finished(run.Partial(add, 1, 2))
    records = Records()
    assert records.set_state(job.id, "RUNNING") == "SUCCEEDED"
    assert records.set_state(job.id, "FAILED", "late") == "SUCCEEDED"
    assert records.get(job.id).state == "SUCCEEDED"
    job.cancel()  # a finished job stays as it ended
    assert run.Job.from_id(job.id).state() == run.JobState.SUCCEEDED
