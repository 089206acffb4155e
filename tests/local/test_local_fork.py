"""LocalExecutor jobs started as forks of the submitter behave like new interpreters.

Each test runs a real submitting script in a fresh process, so whether it may
fork (one thread) is known and its exit handlers really run.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from tests.conftest import REPO_ROOT, child_env


def job_facts(out: str, n: int, submitter_fds: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """What a job sees of its process; it also leaves a thread and an exit handler behind."""
    import atexit

    def late() -> None:  # not a daemon: the job ends after it, as an interpreter would
        time.sleep(0.3)
        Path(out, f"thread-{n}").touch()

    threading.Thread(target=late).start()
    atexit.register(Path(out, f"job-atexit-{n}").touch)
    print(f"job {n} running")
    return {
        "cwd": os.getcwd(),
        "argv0": os.path.basename(sys.argv[0]),
        "sigint_default": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "sigterm_handled": signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None),
        "random": random.random(),
        "stdin": sys.stdin.read(),
        "open_submitter_fds": sorted(k for k, fd in submitter_fds.items() if _still_open(*fd)),
    }


def _still_open(fd: int, inode: int) -> bool:
    """Whether descriptor ``fd`` is still the submitter's (a closed number may be reused)."""
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


FORKING_SUBMITTER = """
import atexit, json, os, socket, sys, tempfile
import nemo_run_k8s as run
from tests.local.test_local_fork import job_facts

out = sys.argv[1]
scratch = tempfile.TemporaryDirectory()  # a copy of the submitter must not clean it up
server = socket.create_server(("127.0.0.1", 0))  # the job must not hold these
pipe_read, pipe_write = os.pipe()
log_file = open(os.path.join(out, "submitter.log"), "a")  # files stay open
fds = {
    name: (fd, os.fstat(fd).st_ino)
    for name, fd in [("socket", server.fileno()), ("pipe", pipe_write), ("file", log_file.fileno())]
}
atexit.register(lambda: open(os.path.join(out, "submitter-atexit"), "a").write("ran\\n"))
print("unflushed submitter output", end="")
jobs = [
    run.submit(
        run.Partial(job_facts, out=out, n=n, submitter_fds=fds), run.LocalExecutor(workdir=out)
    )
    for n in range(2)
]
results = [job.result(timeout=60) for job in jobs]
print()
print(json.dumps({
    "started": [job.record.handle["started"] for job in jobs],
    "results": results,
    "logs": [list(job.logs()) for job in jobs],
    "scratch_kept": os.path.isdir(scratch.name),
}))
"""


def test_forked_job_starts_like_a_new_interpreter(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FORKING_SUBMITTER, str(tmp_path)],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "unflushed submitter output"  # printed once, by the submitter
    seen = json.loads(lines[-1])

    assert seen["started"] == ["fork", "fork"]
    assert seen["logs"] == [["job 0 running"], ["job 1 running"]]
    first, second = seen["results"]
    for facts in (first, second):
        assert facts["cwd"] == str(tmp_path)
        assert facts["argv0"] == "entrypoint.py"
        assert facts["sigint_default"] and facts["sigterm_handled"]
        assert facts["stdin"] == ""
        assert facts["open_submitter_fds"] == ["file"]
    assert first["random"] != second["random"]  # each job seeds afresh
    assert seen["scratch_kept"]

    # Each job joined its thread and ran its own exit handler; the submitter's ran once.
    for n in range(2):
        assert (tmp_path / f"thread-{n}").exists()
        assert (tmp_path / f"job-atexit-{n}").exists()
    assert (tmp_path / "submitter-atexit").read_text() == "ran\n"


THREADED_SUBMITTER = """
import sys, threading
import nemo_run_k8s as run
from tests.local.test_local_executor import add

if sys.argv[1] == "thread":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
job = run.submit(run.Partial(add, a=1), run.LocalExecutor())
print(job.record.handle["started"], job.result(timeout=60))
"""


@pytest.mark.parametrize("reason", ["thread", "env"])
def test_submitter_that_cannot_fork_safely_starts_a_new_interpreter(reason: str) -> None:
    env = child_env(NEMO_RUN_K8S_NO_FORK="1") if reason == "env" else child_env()
    proc = subprocess.run(
        [sys.executable, "-c", THREADED_SUBMITTER, reason],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["new", "interpreter", "2"]


def test_failed_fork_falls_back_to_a_new_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    from nemo_run_k8s.executors.fork import can_fork
    from tests.local.test_local_executor import add

    def no_memory() -> int:  # what a copy of a large process may meet under strict overcommit
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    assert can_fork()  # this process would fork, were it not for the failure below
    monkeypatch.setattr(os, "fork", no_memory)
    job = run.submit(run.Partial(add, a=1), run.LocalExecutor())
    assert job.record.handle["started"] == "new interpreter"
    assert job.result(timeout=60) == 2
