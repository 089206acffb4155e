"""What the fault tests share: recording fake jobs, waiting on files and processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nemo_run_k8s.records import JobRecord, Records


def record(job_id: str, state: str = "SUCCEEDED", **fields: object) -> JobRecord:
    """Adds a record of a job that ran nowhere (an empty handle unless given)."""
    rec = JobRecord(
        id=job_id,
        name=job_id.rsplit("-", 1)[0],
        experiment=None,
        executor="local",
        handle={},
        bundle_sha256="0" * 64,
        created=time.time(),
        state=state,
        updated=time.time(),
        job_dir=str(Records().job_dir(job_id)),
    )
    for name, value in fields.items():
        setattr(rec, name, value)
    Records().add(rec)
    return rec


def wait_for_file(path: Path, proc: object = None) -> str:
    """Waits until ``path`` has content; returns it (no time limit: pytest-timeout guards)."""
    while not (path.exists() and (text := path.read_text())):
        if proc is not None and proc.poll() is not None:  # type: ignore[attr-defined]
            raise AssertionError(f"process ended (code {proc.returncode}) before {path} appeared")  # type: ignore[attr-defined]
        time.sleep(0.02)
    return text


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int) -> None:
    while running(pid):
        time.sleep(0.02)


def kill9(pid: int) -> None:
    os.kill(pid, 9)
    wait_gone(pid)
