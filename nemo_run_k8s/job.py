"""``run.Job``: a handle on a submitted job that behaves like a future.

A Job holds only its id and record; every question (state, logs, outcome) is
answered by the backend through the handle stored in the record, so
``Job.from_id(id)`` in a fresh process sees exactly what the submitter sees.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from typing import Any

from nemo_run_k8s.errors import JobFailed, ResultMissingError
from nemo_run_k8s.executors.base import Executor, backend_class
from nemo_run_k8s.records import JobRecord, Records, submitter_gone
from nemo_run_k8s.spec import JobDescription, JobState

_POLL_START = 0.01


class Job:
    """A submitted job. Create with ``run.submit`` or reattach with ``Job.from_id``."""

    def __init__(self, record: JobRecord, records: Records | None = None):
        self._record = record
        self._records = records or Records()

    @classmethod
    def from_id(cls, job_id: str) -> Job:
        """Reattaches to a job recorded on this machine (an unambiguous id prefix works)."""
        records = Records()
        return cls(records.get(job_id), records)

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def executor(self) -> str:
        return self._record.executor

    @property
    def record(self) -> JobRecord:
        return self._record

    @property
    def _backend(self) -> type[Executor]:
        return backend_class(self._record.executor)

    def _refresh(self) -> JobRecord:
        self._record = self._records.get(self.id)
        return self._record

    def state(self) -> JobState:
        """The job's state, read from the backend now (and remembered in the record).

        A terminal state, once recorded, is final: it is returned without asking
        the backend again, so files removed after the job ended cannot turn a
        success into a failure. A job never launched is FAILED once the process
        that was submitting it has died (see :func:`~nemo_run_k8s.api.launch_prepared`).
        """
        record = self._record
        if not JobState(record.state).is_terminal and not record.handle:
            record = self._refresh()  # the submitter may have launched it since
        if JobState(record.state).is_terminal:
            if record.handle:
                self._backend.settle(record.handle)
            return JobState(record.state)
        if not record.handle:
            return self._unlaunched_state(record)
        state = self._backend.state(record.handle)
        if state.value != record.state:
            message = self._backend.reason(record.handle) if state.is_terminal else None
            kept = self._records.set_state(self.id, state.value, message)
            if kept != state.value:  # another process recorded the end first
                return JobState(self._refresh().state)
            record.state = kept
            if message is not None:
                record.message = message
        return state

    def _unlaunched_state(self, record: JobRecord) -> JobState:
        """PENDING while its submitter lives; FAILED once the submitter died before the launch."""
        if record.state != JobState.PENDING.value or not submitter_gone(record.submitter):
            return JobState(record.state)
        who = record.submitter
        message = (
            f"the process submitting the job (pid {who.get('pid')} on {who.get('host')}) "
            "exited before the launch finished (killed, or its terminal closed): the job was "
            "never started"
        )
        self._records.set_state(self.id, JobState.FAILED.value, message)
        return JobState(self._refresh().state)

    def reason(self) -> str:
        """The backend's account of why the job failed or is stuck ('' when it has none).

        For a finished job, what was recorded when its end was first seen.
        """
        record = self._record
        if not record.handle or (JobState(record.state).is_terminal and record.message):
            return record.message
        if record.state == JobState.SUCCEEDED.value:
            return ""
        return self._backend.reason(record.handle)

    def describe(self) -> JobDescription:
        """State, reason, each node's status (a pod's phase and why) and recent warnings.

        Backends without per-node detail (local, Docker) give the state and reason only.
        """
        record = self._record
        if not record.handle or JobState(record.state).is_terminal:
            state = self.state()  # a launch, an end or a dead submitter, recorded once
            if not self._record.handle:
                return JobDescription(state, self._record.message)
        description = self._backend.describe(self._record.handle)
        if description.state.value != self._record.state:
            reason = description.reason if description.state.is_terminal else None
            kept = self._records.set_state(self.id, description.state.value, reason)
            if kept != description.state.value:  # the recorded end is final
                self._refresh()
                description = dataclasses.replace(
                    description, state=JobState(kept), reason=self._record.message
                )
            else:
                self._record.state = kept
                if reason is not None:
                    self._record.message = reason
        return description

    def wait_started(self) -> JobState:
        """Waits while the job is PENDING, showing on stderr why it has not started.

        Returns the state it moved to (RUNNING, or a final one). What shows,
        if anything, follows ``run.set_progress`` (see :mod:`nemo_run_k8s.progress`).
        """
        from nemo_run_k8s import progress

        return progress.watch_start(self.describe, self.id, self._backend.poll_interval)

    def done(self) -> bool:
        return self.state().is_terminal

    def wait(self, timeout: float | None = None) -> JobState:
        """Waits until the job ends (or ``timeout`` seconds pass) and returns its state."""
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or math.isnan(timeout)
            or timeout < 0
        ):
            raise ValueError(f"timeout must be seconds >= 0 (or None: no limit), got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _POLL_START
        while True:
            state = self.state()
            if state.is_terminal:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return state
            time.sleep(delay)
            delay = min(delay * 1.3, self._backend.poll_interval)

    def logs(
        self, follow: bool = False, *, replica: str | None = None, index: int | None = None
    ) -> Iterator[str]:
        """The job's log lines; with ``follow``, new lines as they come until the job ends.

        Every node's lines, merged as they come and prefixed with the node
        (``[master0 rank0]``, ``[worker1 rank2]`` on Kubernetes; ``[node1 rank1]`` in
        Docker). ``replica="master"|"worker"`` and ``index`` pick nodes: node 0 of a
        Docker job is the master, node ``i + 1`` is worker ``i``.
        """
        if not self._record.handle:
            from nemo_run_k8s.executors.base import select_nodes

            select_nodes(1, replica, index)  # the same errors as a launched job
            return iter(())
        return self._backend.logs(self._record.handle, follow=follow, replica=replica, index=index)

    def log_tail(self, lines: int = 30) -> str:
        tail: list[str] = []
        for line in self.logs():
            tail.append(line)
            del tail[:-lines]
        return "\n".join(tail)

    def cancel(self) -> None:
        """Stops the job and removes what it holds; its state becomes CANCELLED.

        A job that has ended keeps its state; the backend still removes what
        it holds (a failed PyTorchJob stays on the cluster until cancelled). A
        job still being submitted is recorded CANCELLED, and its submitter
        cancels it as soon as its launch returns.
        """
        state = self.state()
        if self._record.handle:
            self._backend.cancel(self._record.handle)
            self.state()
        elif not state.is_terminal:
            self._records.set_state(self.id, JobState.CANCELLED.value, "cancelled")
            self._refresh()

    def result(self, timeout: float | None = None) -> Any:
        """Waits for the job and returns rank 0's return value.

        Raises :class:`JobFailed` (with the job's traceback, or the end of its
        logs) when the job did not succeed, and ``TimeoutError`` when
        ``timeout`` passes first.
        """
        error = self.exception(timeout)
        if error is not None:
            raise error
        handle = self._record.handle
        outcome = self._backend.outcome(handle)
        if outcome is None:
            raise ResultMissingError(
                f"job {self.id} SUCCEEDED, but its result is gone: "
                f"{self._backend.missing_outcome(handle)}"
            )
        if outcome[0] != "success":  # written by a version that let such jobs succeed
            raise JobFailed(self.id, JobState.FAILED, traceback=str(outcome[1]))
        return outcome[1]

    def exception(self, timeout: float | None = None) -> JobFailed | None:
        """Waits for the job; returns a :class:`JobFailed` if it did not succeed, else None."""
        state = self.wait(timeout)
        if not state.is_terminal:
            raise TimeoutError(f"job {self.id} is still {state.value} after {timeout} s")
        if state is JobState.SUCCEEDED:
            return None
        handle = self._record.handle
        if not handle:  # never launched: the record says why
            return JobFailed(self.id, state, reason=self._record.message)
        outcome = self._backend.outcome(handle)
        traceback = outcome[1] if outcome and outcome[0] == "error" else ""
        reason = self.reason()
        return JobFailed(self.id, state, self.log_tail(), traceback, reason)

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, executor={self.executor!r})"


def list_jobs(
    experiment: str | None = None, executor: str | None = None, limit: int | None = None
) -> list[Job]:
    """Jobs recorded on this machine, newest first (states as last seen)."""
    records = Records()
    return [
        Job(r, records) for r in records.list(experiment=experiment, executor=executor, limit=limit)
    ]
