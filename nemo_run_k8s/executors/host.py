"""What the backends that run jobs on this host share (local processes, Docker).

Both start a detached supervisor process per job (:func:`start_detached`) and
keep each node's log as a file in the job's directory (``handle["log_files"]``),
so logs survive the job and any process can follow them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nemo_run_k8s.executors.base import Executor, LineBuffer, select_nodes
from nemo_run_k8s.executors.fork import can_fork, detach
from nemo_run_k8s.spec import Handle

# Supervisors this process started as new interpreters: reaped here, never left as zombies.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def importable_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with this nemo_run_k8s first on ``PYTHONPATH``, for interpreters started here."""
    path = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path}


def start_detached(
    body: Callable[[], int] | None,
    argv: list[str],
    *,
    stdout: str,
    env: Mapping[str, str],
    cwd: str | None = None,
    keep_fds: tuple[int, ...] = (),
) -> tuple[int, str]:
    """Starts a process in a session of its own (it outlives this one); returns (pid, how).

    Where it is safe (see ``_fork.py``) the process is a fork of this one that
    runs ``body()``; otherwise, with no ``body``, or when the fork fails (no
    memory for a copy of a large process, say), it is ``argv`` run by a new
    interpreter with ``env`` and ``cwd``. Its output goes to the file
    ``stdout``; descriptors in ``keep_fds`` stay open in it. ``how`` is "fork"
    or "new interpreter".
    """
    if body is not None and can_fork():
        try:
            return detach(body, stdout=stdout, keep_fds=keep_fds), "fork"
        except OSError:
            pass
    with open(stdout, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=keep_fds,
            start_new_session=True,  # survives this process and its Ctrl-C
        )
    CHILDREN[proc.pid] = proc
    return proc.pid, "new interpreter"


class HostExecutor(Executor):
    """A backend whose jobs run on this host and keep their logs in files listed by the handle."""

    @classmethod
    def logs(
        cls,
        handle: Handle,
        follow: bool = False,
        *,
        replica: str | None = None,
        index: int | None = None,
    ) -> Iterator[str]:
        """Lines of the nodes' log files; node 0 is the master, node ``i + 1`` worker ``i``."""
        files = handle["log_files"]
        nodes = select_nodes(len(files), replica, index)
        return follow_files(
            [Path(files[n]) for n in nodes],
            lambda: cls.state(handle).is_terminal,
            follow,
        )


#: How much of a log file is read at once: with ``MAX_LOG_LINE`` it bounds the memory
#: reading a log takes, whatever its size.
READ_CHUNK = 1 << 16


def follow_files(
    files: list[Path], finished: Any, follow: bool, prefixes: list[str] | None = None
) -> Iterator[str]:
    """Yields lines of ``files`` (interleaved as written); with ``follow``, until ``finished()``.

    Reads at most :data:`READ_CHUNK` bytes at a time and holds at most one
    line per file (see :class:`~nemo_run_k8s.executors.base.LineBuffer`), so
    memory stays bounded however large a log grows. A file that still does not
    exist once the job has ended is reported by a line saying so.
    """
    handles: list[Any] = [None] * len(files)
    buffers = [LineBuffer(universal_newlines=True) for _ in files]  # as text files were
    prefixes = prefixes or [""] * len(files)
    try:
        while True:
            done = finished() if follow else True  # read once more after the job ended
            for i, path in enumerate(files):
                if handles[i] is None:
                    try:
                        handles[i] = open(path, "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        continue
                while chunk := handles[i].read(READ_CHUNK):
                    for line in buffers[i].feed(chunk):
                        yield prefixes[i] + line.decode("utf-8", errors="replace")
            if done:
                for i, buffer in enumerate(buffers):
                    if rest := buffer.rest():
                        yield prefixes[i] + rest.decode("utf-8", errors="replace")
                    if handles[i] is None:
                        yield f"{prefixes[i]}[nemo-run-k8s] no log at {files[i]} (removed?)"
                return
            time.sleep(0.1)
    finally:
        for h in handles:
            if h is not None:
                h.close()


def start_time(pid: int) -> str | None:
    """The process start time from /proc (guards against pid reuse), if available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(handle: Handle) -> bool:
    pid = handle["pid"]
    child = CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return handle.get("start_time") in (None, fields[19])
