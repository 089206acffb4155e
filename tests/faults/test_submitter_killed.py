"""Item 3: a submitter that dies between recording a job and launching it fails the job.

The record names its submitter (host, pid, start time) until the launch
returns; a PENDING record with no handle whose submitter is gone is a failed
submission, so ``wait()`` returns and ``reason()`` says what happened.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nemo_run_k8s as run
from nemo_run_k8s.records import Records, submitter_now
from tests.conftest import child_env
from tests.faults.helpers import kill9, record, wait_for_file

# A submitter that records its job, then hangs in the launch (as in a long image build).
SUBMITTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import nemo_run_k8s as run
    from nemo_run_k8s.executors.local.executor import LocalExecutor

    def hang(self, plan, bundle, job):
        Path(sys.argv[1]).write_text(job.job_id)
        while True:
            time.sleep(1)

    LocalExecutor.launch = hang
    run.submit(run.Partial(print, "never"), run.LocalExecutor(), name="orphan")
    """
)


def test_a_killed_submitter_fails_its_job(tmp_path: Path, home: Path) -> None:
    marker = tmp_path / "launching"
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBMITTER, str(marker)],
        env=child_env(NEMO_RUN_K8S_HOME=str(home)),
    )
    try:
        job_id = wait_for_file(marker, proc)
        job = run.Job.from_id(job_id)
        assert job.state() == run.JobState.PENDING  # its submitter is still launching it
        assert job.record.submitter["pid"] == proc.pid
    finally:
        kill9(proc.pid)
        proc.wait()
    assert job.wait() == run.JobState.FAILED
    assert f"pid {proc.pid}" in job.reason()
    assert "never started" in job.reason()
    error = job.exception()
    assert error is not None and "exited before the launch finished" in str(error)
    assert Records().get(job_id).state == "FAILED"


def test_a_live_submitter_keeps_its_job_pending() -> None:
    record("train-11111111", state="PENDING", submitter=submitter_now())
    assert run.Job.from_id("train-11111111").state() == run.JobState.PENDING


def test_a_submitter_on_another_host_is_not_judged() -> None:
    other = {"host": "elsewhere.invalid", "pid": 1, "start_time": "0"}
    record("train-22222222", state="PENDING", submitter=other)
    assert run.Job.from_id("train-22222222").state() == run.JobState.PENDING


def test_a_reused_pid_is_not_mistaken_for_the_submitter() -> None:
    me = {**submitter_now(), "start_time": "1"}  # this pid, but started at another time
    record("train-33333333", state="PENDING", submitter=me)
    assert run.Job.from_id("train-33333333").state() == run.JobState.FAILED


def test_a_job_cancelled_while_being_launched_is_cancelled_once_launched(
    monkeypatch: object,
) -> None:
    from nemo_run_k8s.executors.local.executor import LocalExecutor

    launch = LocalExecutor.launch

    def cancel_first(self, plan, bundle, job):  # type: ignore[no-untyped-def]
        run.Job.from_id(job.job_id).cancel()  # someone else cancels it meanwhile
        return launch(self, plan, bundle, job)

    monkeypatch.setattr(LocalExecutor, "launch", cancel_first)  # type: ignore[attr-defined]
    job = run.submit(run.Partial(input), LocalExecutor())  # would wait on stdin forever
    assert job.wait() == run.JobState.CANCELLED
