"""``run.submit``, ``run.run`` and ``run.dryrun``.

Submitting is "dry run, then launch": the plan that ``dryrun`` prints is the
object ``submit`` launches.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nemo_run_k8s.bundle.files import Bundle, make_bundle
from nemo_run_k8s.bundle.tasks import check_callable, task_kind
from nemo_run_k8s.errors import BackendError, JobFailed, SubmissionError
from nemo_run_k8s.executors.base import Executor, backend_class
from nemo_run_k8s.job import Job
from nemo_run_k8s.labels import dns1035_name
from nemo_run_k8s.paths import JobPaths
from nemo_run_k8s.records import JobRecord, Records, submitter_now
from nemo_run_k8s.spec import JobIdentity, JobState, Plan


def submit(
    task: Any,
    executor: Executor | None = None,
    name: str | None = None,
    *,
    experiment: str | None = None,
) -> Job:
    """Validates, bundles and launches ``task``; returns at once with its :class:`Job`.

    ``executor`` defaults to ``run.LocalExecutor()``. Nothing starts when the
    task cannot be bundled or the executor's request cannot be met.
    """
    executor = executor or default_executor()
    records = Records()
    job, bundle = prepare(task, executor, name, experiment, records.job_dir)
    with unrecorded_on_failure([job]):
        plan = executor.plan(bundle, job)
        with refused_as_submission():
            executor.check_backend()
    return launch_prepared(executor, job, bundle, plan, records)


@contextlib.contextmanager
def unrecorded_on_failure(jobs: list[JobIdentity]) -> Iterator[None]:
    """Removes the job directories of ``jobs`` if the block fails before they are recorded.

    A bundle is written before the backend is asked (no engine, no cluster,
    an option it cannot meet): a refusal then must not leave a directory that
    no record points to.
    """
    try:
        yield
    except BaseException:
        for job in jobs:
            shutil.rmtree(job.job_dir, ignore_errors=True)
        raise


@contextlib.contextmanager
def refused_as_submission() -> Iterator[None]:
    """A backend's refusal while a job is being started is a :class:`SubmissionError`."""
    try:
        yield
    except SubmissionError:
        raise
    except BackendError as err:
        raise SubmissionError(str(err)) from err


def launch_prepared(
    executor: Executor, job: JobIdentity, bundle: Bundle, plan: Plan, records: Records
) -> Job:
    """Records the job, then launches its plan. The record exists before anything starts.

    Until the launch returns, the record names this process as its submitter:
    should it die in between (kill -9, a closed terminal, during an image
    build), ``Job.state()`` sees a PENDING record without a handle whose
    submitter is gone and fails it, so nobody waits forever. A job cancelled
    while it was being launched is cancelled again once it has a handle.
    """
    experiment = job.experiment
    record = JobRecord(
        id=job.job_id,
        name=job.name,
        experiment=experiment,
        executor=executor.kind,
        handle={},
        bundle_sha256=bundle.sha256,
        created=time.time(),
        state=JobState.PENDING.value,
        updated=time.time(),
        job_dir=str(job.job_dir),
        submitter=submitter_now(),
    )
    records.add(record)
    try:
        with refused_as_submission():
            handle = executor.launch(plan, bundle, job)
    except BaseException as err:  # Ctrl-C included: the record says what happened
        reason = "interrupted during submit" if isinstance(err, KeyboardInterrupt) else str(err)
        records.set_state(job.job_id, JobState.FAILED.value, reason)
        raise
    records.update(job.job_id, handle=handle, submitter={})
    record.handle, record.submitter = handle, {}
    launched = Job(record, records)
    if records.get(job.job_id).state == JobState.CANCELLED.value:
        executor.cancel(handle)  # cancelled by someone while it was being launched
    return launched


def run(task: Any, executor: Executor | None = None, name: str | None = None) -> Job:
    """Submits ``task`` and waits for it. Returns the finished :class:`Job`.

    While it builds, pushes and waits for the job to start, progress shows on
    stderr; ``run.set_progress("off")`` (or ``NEMO_RUN_K8S_PROGRESS=off``) silences it.

    Raises :class:`~nemo_run_k8s.JobFailed` (with the job's traceback or the end
    of its logs) when the job did not succeed. Ctrl-C while waiting cancels
    the job.
    """
    job = submit(task, executor, name)
    try:
        job.wait_started()  # progress: why it has not started yet, if it has not
        job.wait()
    except KeyboardInterrupt:
        job.cancel()
        raise
    error = job.exception()
    if error is not None:
        raise error
    return job


def dryrun(task: Any, executor: Executor | None = None, name: str | None = None) -> Plan:
    """What ``submit`` would build and launch, with no side effects.

    Needs no Docker daemon and no cluster. ``print()`` it to read the plan.
    """
    executor = executor or default_executor()
    tmp = Path(tempfile.mkdtemp(prefix="nemo-run-k8s-dryrun-"))
    try:
        job, bundle = prepare(task, executor, name, None, lambda job_id: tmp / job_id)
        plan = executor.plan(bundle, job)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return plan


def prepare(
    task: Any, executor: Executor, name: str | None, experiment: str | None, job_dir: Any
) -> tuple[JobIdentity, Bundle]:
    """Validates and bundles a task (no backend I/O); the executor plans it next."""
    task_kind(task)
    check_callable(task)
    name = name or _default_name(task)
    job_id = new_job_id(name)
    job = JobIdentity(
        job_id=job_id, name=name, job_dir=Path(job_dir(job_id)), experiment=experiment
    )
    bundle_dir = JobPaths(job.job_dir).bundle
    bundle = make_bundle(task, bundle_dir, executor.resources(), executor.code_dirs())
    return job, bundle


def new_job_id(name: str) -> str:
    """A short unique id that still says what the job is: ``train-3f9a1c2b``."""
    return dns1035_name(name, max_len=40, suffix=secrets.token_hex(4))


def _default_name(task: Any) -> str:
    from nemo_run_k8s.config.script import Script

    if isinstance(task, Script):
        return Path(task.path).stem if task.path else "script"
    fn = task.__fn_or_cls__
    return getattr(fn, "__name__", "job")


def default_executor() -> Executor:
    return backend_class("local")()


__all__ = ["JobFailed", "dryrun", "run", "submit"]
