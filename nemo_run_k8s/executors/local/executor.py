"""LocalExecutor: runs a bundle through the entrypoint in a local process.

The embedded default: no Docker, no cluster. The job runs detached from the
submitting process (its own session and process group, watched by a tiny
supervisor that records the exit status), so it survives the submitter and any
terminal can follow it by id. Logs go to ``<job dir>/logs/node-0.log``; rank
0's outcome to ``<job dir>/output``.

How the job process starts: where it is safe (Linux, a submitting process with
a single thread; see ``_fork.py``) supervisor and job are forks of the
submitting process, which has fiddle and cloudpickle imported already; the job
then runs the entrypoint on the bundle as a new interpreter would (the task is
unpickled from the bundle, not taken from the submitter's memory). Otherwise,
or with ``fork=False``, they are new interpreters
(``python -m nemo_run_k8s.runtime.entrypoint``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from nemo_run_k8s.config.script import _check_env
from nemo_run_k8s.errors import InvalidOptionError, SubmissionError
from nemo_run_k8s.executors.base import reject_unknown_options
from nemo_run_k8s.executors.fork import fork_child, wait_child
from nemo_run_k8s.executors.host import (
    CHILDREN,
    HostExecutor,
    alive,
    importable_env,
    start_detached,
    start_time,
)
from nemo_run_k8s.executors.local import supervisor as _supervisor
from nemo_run_k8s.executors.local.processes import job_processes, job_running, signal_all
from nemo_run_k8s.exit_status import ExitStatus
from nemo_run_k8s.paths import JobPaths
from nemo_run_k8s.runtime.contract import node_env
from nemo_run_k8s.spec import Handle, JobIdentity, JobState, Plan, Resources

_SUPERVISOR = str(Path(_supervisor.__file__).resolve())


@reject_unknown_options
@dataclasses.dataclass
class LocalExecutor(HostExecutor):
    """Runs the job as a local process (``nproc_per_node`` > 1 uses torchrun).

    Args:
      nproc_per_node: processes to start; more than one needs torch installed.
      env_vars: extra environment variables for the job (strings).
      workdir: the job's working directory (default: the current directory).
      fork: start the job as a fork of the submitting process when that is safe,
        which skips interpreter start-up and imports. The job sees the
        submitter's imported modules and ``sys.path``; its environment, working
        directory, signals and exit handlers are its own. False: always a new
        interpreter, as in a container.

    A job ends as a container does: its processes are its supervisor's process
    group and the supervisor's descendants (the supervisor is a child
    subreaper), so ``cancel()`` also stops programs the job started with
    ``setsid``, and what the job leaves running when its main process exits is
    stopped before its end is recorded. The limit: if the supervisor itself is
    killed, programs in sessions of their own are adopted by init and only the
    job's process group can still be stopped.
    """

    nproc_per_node: int = 1
    env_vars: dict[str, str] | None = None
    workdir: str | None = None
    fork: bool = True

    kind = "local"
    poll_interval = 0.01  # state is a file and /proc: cheap to ask often

    def __post_init__(self) -> None:
        if not isinstance(self.nproc_per_node, int) or self.nproc_per_node < 1:
            raise InvalidOptionError(
                f"LocalExecutor(nproc_per_node={self.nproc_per_node!r}): must be an int >= 1"
            )
        try:
            self.env_vars = _check_env(self.env_vars or {})
        except ValueError as err:
            raise InvalidOptionError(f"LocalExecutor: {err}") from None

    def resources(self) -> Resources:
        return Resources(num_nodes=1, nproc_per_node=self.nproc_per_node, gpus_per_node=0)

    def plan(self, bundle: Any, job: JobIdentity) -> Plan:
        paths = JobPaths(job.job_dir)
        output_dir = paths.output
        command = [sys.executable, "-m", "nemo_run_k8s.runtime.entrypoint", str(bundle.path)]
        command += ["--output", str(output_dir)]
        return self._plan(
            bundle,
            job,
            documents=[
                {
                    "start": (
                        "as a fork of the submitting process, which runs the entrypoint as "
                        "`command` would, if it has one thread; else `command`"
                        if self.fork
                        else "`command`, a new interpreter"
                    ),
                    "command": command,
                    "env": {
                        **node_env(0, "127.0.0.1", 0, num_nodes=1, nproc=self.nproc_per_node),
                        **(self.env_vars or {}),
                    },
                    "workdir": self.workdir or os.getcwd(),
                    "logs": str(paths.log(0)),
                }
            ],
        )

    def launch(self, plan: Plan, bundle: Any, job: JobIdentity) -> Handle:
        spec = plan.documents[0]
        log_file = Path(spec["logs"])
        log_file.parent.mkdir(parents=True, exist_ok=True)
        env = importable_env({**os.environ, **spec["env"]})
        env["MASTER_PORT"] = env["PET_MASTER_PORT"] = str(_free_port())
        if not Path(spec["workdir"]).is_dir():
            raise SubmissionError(f"the job's workdir {spec['workdir']} is not a directory")
        args = (spec["command"], env, spec["workdir"], job.job_dir, log_file)
        try:
            pid, started = start_detached(
                _forked_job(*args) if self.fork else None,
                [_SUPERVISOR, str(job.job_dir), str(log_file), "--", *spec["command"]],
                stdout=os.devnull,
                env=env,
                cwd=spec["workdir"],
            )
        except OSError as err:
            raise SubmissionError(f"cannot start the local job: {err}") from err
        return {
            "pid": pid,
            "start_time": start_time(pid),
            "started": started,
            "job_dir": str(job.job_dir),
            "output_dir": str(JobPaths(job.job_dir).output),
            "log_files": [str(log_file)],
        }

    @classmethod
    def state(cls, handle: Handle) -> JobState:
        """From ``exit.json``; while there is none, from the job's processes.

        Should the supervisor die (kill -9, the OOM killer), the job is RUNNING
        as long as one of its processes runs, and then ends as rank 0's outcome
        file says (see :func:`_finish_unsupervised`).
        """
        status = ExitStatus.read(JobPaths(Path(handle["job_dir"])).exit_status)
        if status is not None:
            return JobState(status.state)
        if alive(handle) or _job_running(handle):
            return JobState.RUNNING
        return _finish_unsupervised(handle)

    @classmethod
    def reason(cls, handle: Handle) -> str:
        if not cls.state(handle).is_terminal:
            return ""
        status = ExitStatus.read(JobPaths(Path(handle["job_dir"])).exit_status)
        if status is None:  # its directory is gone
            return "the job's exit status is missing (its directory was removed?)"
        return status.reason if status.state == JobState.FAILED.value else ""

    @classmethod
    def cancel(cls, handle: Handle, grace_seconds: float = 10.0) -> None:
        """SIGTERM to every process of the job, SIGKILL to what is left after the grace.

        The job's processes are its group and the supervisor's descendants, so
        a program the job started with ``setsid`` is stopped too (see
        ``processes.py``; not once the supervisor itself has been killed: its
        orphans then belong to init).
        """
        if cls.state(handle).is_terminal:
            return
        # A supervisor that has just recorded the end may still be exiting while the job's
        # directory is removed: the processes are still stopped, the request has no place.
        with contextlib.suppress(FileNotFoundError):
            JobPaths(Path(handle["job_dir"])).cancel_requested.touch()
        signal_all(_job_processes(handle), signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while (left := _job_processes(handle)) and time.monotonic() < deadline:
            time.sleep(0.05)
        while left:
            signal_all(left, signal.SIGKILL)
            time.sleep(0.02)
            left = _job_processes(handle)
        cls.state(handle)  # records the end, should the supervisor have been killed


def _job_running(handle: Handle) -> bool:
    child = CHILDREN.get(handle["pid"])
    if child is not None:
        child.poll()
    return job_running(handle["pid"], handle.get("start_time"))


def _job_processes(handle: Handle) -> list[int]:
    """The job's live processes (for a job launched in this process, zombies reaped first)."""
    child = CHILDREN.get(handle["pid"])
    if child is not None:
        child.poll()
    return job_processes(handle["pid"], handle.get("start_time"))


def _finish_unsupervised(handle: Handle) -> JobState:
    """Records the end of a job whose supervisor died, once none of its processes runs.

    The exit code is lost with the supervisor; rank 0's outcome file says how
    the task ended: success is SUCCEEDED, an error (or none) FAILED, and a job
    someone cancelled without a success is CANCELLED. The first writer of
    ``exit.json`` wins, as always.
    """
    from nemo_run_k8s.bundle.outcome import peek_outcome_status

    paths = JobPaths(Path(handle["job_dir"]))
    outcome = peek_outcome_status(paths.output)
    lost = "its supervisor was killed"
    if outcome == "success":
        status = ExitStatus("SUCCEEDED", "", {0: None})
    elif paths.cancel_requested.exists():
        status = ExitStatus("CANCELLED", "cancelled", {0: None})
    elif outcome == "error":
        status = ExitStatus("FAILED", f"the task raised an error ({lost})", {0: None})
    else:
        status = ExitStatus(
            "FAILED", f"the job ended without an outcome ({lost}; exit code unknown)", {0: None}
        )
    if paths.root.is_dir():
        status.write(paths.exit_status)
        status = ExitStatus.read(paths.exit_status) or status
    return JobState(status.state)


def _forked_job(
    command: list[str], env: dict[str, str], workdir: str, job_dir: Path, log: Path
) -> Callable[[], int]:
    """The supervisor's body when it is a fork: it forks the job, which runs ``command``'s
    entrypoint in-process (fiddle and cloudpickle are imported already)."""
    from nemo_run_k8s.runtime import entrypoint

    args = command[3:]  # what follows `python -m nemo_run_k8s.runtime.entrypoint`
    argv = [entrypoint.__file__, *args]

    def start(log_file: BinaryIO) -> int:
        pid = fork_child(
            lambda: entrypoint.main(args),
            stdout_fd=log_file.fileno(),
            env=env,
            cwd=workdir,
            argv=argv,
        )
        return wait_child(pid)

    return lambda: _supervisor.supervise_process(str(job_dir), str(log), start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
