"""The SQLite job records: where they live, lookups, transactions, concurrent writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_run_k8s.errors import JobNotFoundError
from nemo_run_k8s.records import JobRecord, Records, home
from tests.conftest import child_env


def record(job_id: str, created: float = 1.0, **fields: object) -> JobRecord:
    values: dict[str, object] = {
        "id": job_id,
        "name": job_id.rsplit("-", 1)[0],
        "experiment": None,
        "executor": "local",
        "handle": {"pid": 123, "log_files": ["/x/node-0.log"]},
        "bundle_sha256": "ab" * 32,
        "created": created,
        "state": "PENDING",
        "updated": created,
        "job_dir": f"/jobs/{job_id}",
    }
    values.update(fields)
    return JobRecord(**values)  # type: ignore[arg-type]


def test_home_is_overridable_and_defaults_per_user(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nemo_run_k8s import records

    assert records.home() == home
    assert Records().db_path == home / "jobs.sqlite3"
    monkeypatch.delenv("NEMO_RUN_K8S_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert records.home() == tmp_path / "state" / "nemo_run_k8s"


def test_add_get_update_list(home: Path) -> None:
    records = Records()
    assert records.list() == []
    assert not (home / "jobs.sqlite3").exists()  # reading creates nothing
    records.add(record("train-aaaa1111", created=1.0, experiment="exp1"))
    records.add(record("train-bbbb2222", created=2.0, executor="docker"))

    got = records.get("train-aaaa1111")
    assert got.handle == {"pid": 123, "log_files": ["/x/node-0.log"]}
    assert got.experiment == "exp1"

    records.update("train-aaaa1111", state="RUNNING", handle={"pid": 7})
    got = records.get("train-aaaa1111")
    assert (got.state, got.handle) == ("RUNNING", {"pid": 7})
    assert got.updated > 1.0

    assert [r.id for r in records.list()] == ["train-bbbb2222", "train-aaaa1111"]  # newest first
    assert [r.id for r in records.list(experiment="exp1")] == ["train-aaaa1111"]
    assert [r.id for r in records.list(executor="docker")] == ["train-bbbb2222"]
    assert [r.id for r in records.list(state="RUNNING")] == ["train-aaaa1111"]
    assert [r.id for r in records.list(limit=1)] == ["train-bbbb2222"]


def test_lookup_by_unambiguous_prefix() -> None:
    records = Records()
    records.add(record("train-aaaa1111"))
    records.add(record("train-aaab2222"))
    assert records.get("train-aaaa").id == "train-aaaa1111"
    with pytest.raises(JobNotFoundError, match="train-aaa"):
        records.get("train-aaa")  # two jobs match
    with pytest.raises(JobNotFoundError):
        records.update("nope", state="FAILED")


def test_failed_write_changes_nothing() -> None:
    records = Records()
    records.add(record("train-aaaa1111", state="RUNNING"))
    with pytest.raises(sqlite3.IntegrityError):
        records.add(record("train-aaaa1111", state="FAILED"))
    assert [(r.id, r.state) for r in records.list()] == [("train-aaaa1111", "RUNNING")]


WRITER = """
import sys, time
from nemo_run_k8s.records import JobRecord, Records
records = Records()
for i in range(int(sys.argv[2])):
    job_id = f"{sys.argv[1]}-{i:04d}"
    records.add(JobRecord(id=job_id, name=sys.argv[1], experiment=None, executor="local",
                          handle={}, bundle_sha256="0", created=time.time(), state="PENDING",
                          updated=time.time(), job_dir="/x"))
    records.update(job_id, state="RUNNING", handle={"pid": i})
"""


def test_two_processes_writing_at_once_stay_consistent() -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, "100"], env=child_env(), stderr=subprocess.PIPE
        )
        for name in ("alpha", "beta")
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr.decode()
    rows = Records().list()
    assert len(rows) == 200
    assert {r.name for r in rows} == {"alpha", "beta"}
    assert all(r.state == "RUNNING" and r.handle == {"pid": int(r.id[-4:])} for r in rows)


def test_default_home_is_not_used_by_tests() -> None:
    assert "NEMO_RUN_K8S_HOME" in child_env()
    assert home() != Path.home() / ".local" / "state" / "nemo_run_k8s"
