"""Starting processes as forks of this one, when that is safe.

A new Python interpreter costs a local job its start-up and imports (fiddle's
import is the largest part); a fork of the submitting process has
them already. The supervisors of local and Docker jobs, and local jobs
themselves, start this way when :func:`can_fork` says it is safe, and as new
interpreters otherwise.

Forking is safe only in a process with a single thread: another thread may
hold a lock (the allocator's, the import lock, a logging handler's) that the
child then waits on forever. CUDA, OpenMP pools, gRPC and Jupyter all start
threads, so the check counts the threads the OS sees, not only Python's.

A forked child is not a new interpreter, so the child side (:func:`_become`)
does what a new one would differ in: default signal handlers, its own
environment, working directory, argv and standard streams, an empty list of
exit handlers, none of the submitter's sockets and pipes. It ends with
:func:`_exit`, which joins the child's own threads, runs the exit handlers
registered in the child, flushes and leaves with ``os._exit``: the parent's
exit handlers and finalizers (temporary directories, database connections)
must not run in a copy of the parent.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import stat
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import TextIO

NO_FORK_ENV = "NEMO_RUN_K8S_NO_FORK"

# Signals a new interpreter starts with default handlers (SIGINT: KeyboardInterrupt).
_RESET_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD")


def can_fork() -> bool:
    """Whether this process can fork safely: Linux, one OS thread, not turned off by the user."""
    if sys.platform != "linux" or os.environ.get(NO_FORK_ENV, "") not in ("", "0"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def detach(body: Callable[[], int], *, stdout: str, keep_fds: tuple[int, ...] = ()) -> int:
    """Runs ``body()`` in a new session forked from this process; returns its pid.

    A double fork: the middle process exits at once, so the detached process is
    adopted by init and never lingers as a zombie of this one; it is out of this
    terminal's reach (Ctrl-C here does not stop it) and leads its own process
    group (its pid is the group id). Its standard output and error go to the
    file ``stdout``. Of this process's other descriptors it keeps files and
    ``keep_fds``; sockets and pipes are closed (see :func:`_close_sockets_and_pipes`).
    """
    _flush_stdio()  # or text buffered here would also be written by the child
    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:  # the middle process
        try:
            os.close(read_fd)
            os.setsid()
            pid = os.fork()
            if pid == 0:
                os.close(write_fd)
                os.setpgid(0, 0)  # leads its own process group: a cancel signals the group
                _run(body, stdout=stdout, keep_fds=keep_fds)
            os.write(write_fd, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        pid_text = pipe.read()
    os.waitpid(middle, 0)
    if not pid_text:
        raise OSError("the detached process could not be started")
    return int(pid_text)


def fork_child(
    body: Callable[[], int],
    *,
    stdout_fd: int,
    env: Mapping[str, str],
    cwd: str,
    argv: list[str],
) -> int:
    """Forks a child that runs ``body()`` the way a new interpreter would; returns its pid.

    The child keeps this process's session and process group. Its standard
    output and error are ``stdout_fd``; its environment is exactly ``env`` (and
    ``PYTHONPATH`` entries there that are not on ``sys.path`` yet are added).
    Inherited sockets and pipes are closed, as in :func:`detach`.
    """
    _flush_stdio()
    pid = os.fork()
    if pid == 0:
        _run(body, stdout=stdout_fd, env=env, cwd=cwd, argv=argv)
    return pid


def wait_child(pid: int) -> int:
    """The exit status of child ``pid`` as ``subprocess`` reports it (-N: killed by signal N)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status)


def _run(
    body: Callable[[], int],
    *,
    stdout: int | str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    argv: list[str] | None = None,
    keep_fds: tuple[int, ...] = (),
) -> None:
    """The child side: becomes a clean process, runs ``body``, exits. Never returns."""
    code = 1
    try:
        _become(stdout, env, cwd, argv, keep_fds)
        code = body()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        _exit(code)


def _become(
    stdout: int | str,
    env: Mapping[str, str] | None,
    cwd: str | None,
    argv: list[str] | None,
    keep_fds: tuple[int, ...],
) -> None:
    """Turns a fresh fork into the process a new interpreter would be (see the module doc)."""
    # The parent's objects stay as they were: never finalized here by the cyclic collector,
    # so none closes a descriptor number the child has since reused.
    gc.freeze()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in _RESET_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.alarm(0)
    signal.set_wakeup_fd(-1)
    atexit._clear()  # the parent's exit handlers are not the child's

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    keep = {*keep_fds, stdout} if isinstance(stdout, int) else set(keep_fds)
    _close_sockets_and_pipes(keep)
    if isinstance(stdout, str):
        out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
    else:
        os.dup2(stdout, 1)
        os.dup2(stdout, 2)
    # New stream objects on the new descriptors; the old ones may hold the parent's text.
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = _text_stream(1)
    sys.stderr = _text_stream(2)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc,assignment]

    if env is not None:
        os.environ.clear()
        os.environ.update(env)
        extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        sys.path[1:1] = extra
    if cwd is not None:
        os.chdir(cwd)
    if argv is not None:
        sys.argv = list(argv)
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # a new interpreter seeds numpy's global generator afresh; so do we
        numpy.random.seed()


def _close_sockets_and_pipes(keep: set[int]) -> None:
    """Closes inherited sockets and pipes (other than 0-2 and ``keep``).

    A job must not hold the submitter's listening sockets (a restarted server
    could not bind its port again while the job runs), its connections (two
    processes would talk on one) or its pipes (a reader waiting for their end
    would wait for the job). Files stay open: a logging handler the submitter
    set up keeps working, as it would in a forked worker.
    """
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in keep:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:  # the descriptor listdir itself used
            continue
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            os.close(fd)


def _text_stream(fd: int) -> TextIO:
    return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)


def _exit(code: int) -> None:
    """Ends the child as an interpreter would, without the parent's handlers and finalizers."""
    try:
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
        _flush_stdio()
    finally:
        os._exit(code)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # closed, or a replaced stream without flush
            pass
