"""Small helpers shared by the cluster tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.cluster.conftest import REPO_ROOT


def bare(line: str) -> str:
    """A log line without the ``[master0 rank0] `` prefix that logs put on merged replicas."""
    return re.sub(r"^\[[a-z]+\d+( rank\d+)?\] ", "", line)


def wait_for_line(job: Any, needle: str, timeout: float = 300) -> list[str]:
    """Polls the job's logs until a line contains ``needle``."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = list(job.logs())
        if any(needle in line for line in lines):
            return lines
        assert not job.done(), f"job ended ({job.state().value}: {job.reason()}):\n" + "\n".join(
            lines
        )
        time.sleep(1)
    raise AssertionError(
        f"no {needle!r} in the logs after {timeout} s ({job.state().value}: {job.reason()})"
    )


def eventually(check: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s (last: {value!r})"
        time.sleep(every)


def cli(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`nemo-run-k8s ARGS` in a fresh process, with this session's records home."""
    proc = subprocess.run(
        [sys.executable, "-m", "nemo_run_k8s.cli", *args],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"nemo-run-k8s {' '.join(args)}: {proc.stderr}"
    return proc
