"""Job records: where each job's things are, so any terminal can find it again.

One SQLite database per user, under ``$NEMO_RUN_K8S_HOME`` (default
``$XDG_STATE_HOME/nemo_run_k8s``, i.e. ``~/.local/state/nemo_run_k8s``). Each
job also gets a directory there (``jobs/<id>/``) for its bundle, logs and
outcome. Records remember where to look; the state shown to users is always
read from the backend, and the record keeps the last state seen.

Every write is one transaction (WAL mode, waiting up to 30 s for a lock), so
two processes submitting at once stay consistent and a crash mid-write loses
nothing written before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nemo_run_k8s.errors import JobNotFoundError, RecordsError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    experiment TEXT,
    executor TEXT NOT NULL,
    handle TEXT NOT NULL DEFAULT '{}',
    bundle_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    job_dir TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE INDEX IF NOT EXISTS jobs_experiment ON jobs (experiment);
"""


def home() -> Path:
    """The per-user directory holding the records database and job directories."""
    override = os.environ.get("NEMO_RUN_K8S_HOME")
    if override:
        # Absolute: jobs run in other working directories (LocalExecutor(workdir=...)).
        return Path(override).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state) / "nemo_run_k8s"


@dataclasses.dataclass
class JobRecord:
    id: str
    name: str
    experiment: str | None
    executor: str
    handle: dict[str, Any]
    bundle_sha256: str
    created: float
    state: str
    updated: float
    job_dir: str
    message: str = ""

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> JobRecord:
        values = dict(row)
        values["handle"] = json.loads(values["handle"])
        return cls(**values)


class Records:
    """The job records database. Cheap to create; opens a connection per operation."""

    def __init__(self, root: Path | None = None):
        self.root = root or home()
        self.db_path = self.root / "jobs.sqlite3"

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection; a database or directory that cannot be used is a :class:`RecordsError`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecordsError(
                f"cannot create the job records directory {self.root}: {err.strerror}. Set "
                "NEMO_RUN_K8S_HOME to a directory you can write to."
            ) from err
        try:
            conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as err:
            raise self._records_error(err) from err
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            yield conn
        except sqlite3.IntegrityError:  # a caller's mistake (a duplicate id), not the file's
            raise
        except sqlite3.Error as err:
            raise self._records_error(err) from err
        finally:
            conn.close()

    def _records_error(self, err: sqlite3.Error) -> RecordsError:
        text = str(err)
        if isinstance(err, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text
        ):
            return RecordsError(
                f"the job records {self.db_path} are damaged ({text}). Move the file aside "
                f"(mv {self.db_path} {self.db_path}.damaged) to start a new one, or set "
                "NEMO_RUN_K8S_HOME to another directory."
            )
        if "readonly" in text or "unable to open" in text:
            return RecordsError(
                f"cannot write the job records {self.db_path} ({text}): make the file and its "
                "directory writable, or set NEMO_RUN_K8S_HOME to a directory you can write to."
            )
        return RecordsError(f"the job records {self.db_path} cannot be used: {text}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def add(self, record: JobRecord) -> None:
        row = dataclasses.asdict(record)
        row["handle"] = json.dumps(record.handle, sort_keys=True)
        columns = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        with self._transaction() as conn:
            conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", row)

    def update(self, job_id: str, **fields: Any) -> None:
        if "handle" in fields:
            fields["handle"] = json.dumps(fields["handle"], sort_keys=True)
        fields["updated"] = time.time()
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        with self._transaction() as conn:
            cursor = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = :id", {**fields, "id": job_id}
            )
            if cursor.rowcount == 0:
                raise JobNotFoundError(f"no job record with id {job_id!r}")

    def get(self, job_id: str) -> JobRecord:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                rows = conn.execute(
                    "SELECT * FROM jobs WHERE id LIKE ? ORDER BY created DESC LIMIT 2",
                    (job_id + "%",),
                ).fetchall()
                if len(rows) == 1:  # an unambiguous prefix, like git's short hashes
                    row = rows[0]
        if row is None:
            raise JobNotFoundError(
                f"no job with id {job_id!r} in {self.db_path}; `nemo-run-k8s list` shows the "
                "known jobs (set NEMO_RUN_K8S_HOME if they were recorded elsewhere)"
            )
        return JobRecord._from_row(row)

    def list(
        self,
        experiment: str | None = None,
        executor: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        query = "SELECT * FROM jobs"
        clauses, params = [], []
        for column, value in (("experiment", experiment), ("executor", executor), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY created DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        if not self.db_path.exists():
            return []
        with self._connect() as conn:
            return [JobRecord._from_row(r) for r in conn.execute(query, params).fetchall()]
