"""The processes of a local job, read from ``/proc``: its group and its supervisor's descendants.

A local job is its supervisor's process group (the supervisor leads it; the
entrypoint, torchrun and the workers are members). Programs the job starts in
a session of their own (``setsid``, ``start_new_session=True``) leave that
group; they stay *descendants* of the supervisor, which is a child subreaper
(``PR_SET_CHILD_SUBREAPER``): orphans in the job's tree are re-parented to it,
not to init, so they can still be found and stopped. Should the supervisor
itself be killed, its orphans go to init and only the group can be found.

Standard library only (the supervisor imports it without fiddle); Linux only,
and every function degrades to "nothing found" elsewhere.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> bool:
    """Makes this process adopt the orphans among its descendants; False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _table() -> dict[int, tuple[int, int, str]]:
    """``{pid: (ppid, pgid, start_time)}`` of every live (non-zombie) process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), fields[19])
    return table


def job_processes(pgid: int, start_time: str | None) -> list[int]:
    """The live processes of the job led by ``pgid``: its group and the leader's descendants.

    ``start_time`` is the leader's (from the job's handle): if another process
    now has the leader's pid, the job is long gone and nothing is returned.
    """
    table = _table()
    leader = table.get(pgid)
    if leader is not None and start_time is not None and leader[2] != start_time:
        return []  # the pid was reused: the job (and its group) ended long ago
    found = {pid for pid, (_, group, _) in table.items() if group == pgid}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


_LAST_SEEN: dict[int, list[int]] = {}  # pgid -> the job's processes at the last full look


def job_running(pgid: int, start_time: str | None) -> bool:
    """Whether any process of the job led by ``pgid`` runs (see :func:`job_processes`).

    Checks the processes seen last time first, so polling a job whose
    supervisor died does not scan every process each time.
    """
    for pid in _LAST_SEEN.get(pgid, ()):
        if _alive(pid) and _group(pid) == pgid:
            return True
    found = job_processes(pgid, start_time)
    _LAST_SEEN[pgid] = found
    if not found:
        _LAST_SEEN.pop(pgid, None)
    return bool(found)


def _group(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (not ``pid`` itself).

    Walks ``/proc/<pid>/task/<tid>/children`` where the kernel has it (a few
    reads for a small tree), else scans every process once.
    """
    found: list[int] = []
    todo = [pid]
    while todo:
        children = _children(todo.pop())
        if children is None:
            return _descendants_by_scan(pid)
        found += children
        todo += children
    return sorted(p for p in found if _alive(p))


def _children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` (zombies included), [] if it is gone, None if unknowable."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    children: list[int] = []
    for tid in tasks:
        try:
            children += [
                int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            ]
        except FileNotFoundError:
            if not Path(f"/proc/{pid}/task/{tid}").exists():
                continue  # the thread ended meanwhile
            return None  # no CONFIG_PROC_CHILDREN
        except OSError:
            return None
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _descendants_by_scan(pid: int) -> list[int]:
    table = _table()
    children: dict[int, list[int]] = {}
    for child, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(child)
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return sorted(found)


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_descendants(grace_seconds: float) -> list[int]:
    """Stops what this process's descendants left running: SIGTERM, SIGKILL after the grace.

    Reaps the adopted children as they end. Returns the pids that were running.
    """
    me = os.getpid()
    left = descendants(me)
    if not left:
        _reap()
        return []
    signal_all(left, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while (rest := descendants(me)) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.02)
    while rest := descendants(me):  # also what they started meanwhile
        signal_all(rest, signal.SIGKILL)
        _reap()
        time.sleep(0.01)
    _reap()
    return left


def _reap() -> None:
    """Collects the exit status of ended children (adopted orphans), so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
