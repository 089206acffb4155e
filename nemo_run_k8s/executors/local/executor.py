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
        paths = JobPaths(Path(handle["job_dir"]))
        status = ExitStatus.read(paths.exit_status)
        if status is not None:
            return JobState(status.state)
        if alive(handle):
            return JobState.RUNNING
        return JobState.CANCELLED if paths.cancel_requested.exists() else JobState.FAILED

    @classmethod
    def reason(cls, handle: Handle) -> str:
        status = ExitStatus.read(JobPaths(Path(handle["job_dir"])).exit_status)
        if status is None:
            return "" if alive(handle) else "the job's supervisor ended without recording an exit"
        return status.reason if status.state == JobState.FAILED.value else ""

    @classmethod
    def cancel(cls, handle: Handle, grace_seconds: float = 10.0) -> None:
        if cls.state(handle).is_terminal:
            return
        JobPaths(Path(handle["job_dir"])).cancel_requested.touch()
        pgid = handle["pid"]
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while _groupalive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _groupalive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            while _groupalive(pgid):
                time.sleep(0.05)


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


def _groupalive(pgid: int) -> bool:
    child = CHILDREN.get(pgid)
    if child is not None:
        child.poll()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg; they are gone for our purposes.
    return any(_member_running(p, pgid) for p in Path("/proc").glob("[0-9]*"))


def _member_running(proc_dir: Path, pgid: int) -> bool:
    try:
        fields = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[2]) == pgid and fields[0] != "Z"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
