"""Job records: where each job's things are, so any terminal can find it again.

One SQLite database per user, under ``$NEMO_RUN_K8S_HOME`` (default
``$XDG_STATE_HOME/nemo_run_k8s``, i.e. ``~/.local/state/nemo_run_k8s``). Each
job also gets a directory there (``jobs/<id>/``) for its bundle, logs and
outcome. Records remember where to look; the state shown to users is read
from the backend until the job ends, and the record keeps the last state seen.

A record also names its *submitter* (host, pid and process start time of the
process launching it) until the launch returns a handle: a record that is
still PENDING without a handle while its submitter is gone was abandoned
mid-submit (:func:`submitter_gone`; ``Job.state`` then records it FAILED). A
recorded terminal state is final: :meth:`Records.set_state` never changes it.

Every write is one transaction (WAL mode, waiting up to 30 s for a lock), so
two processes submitting at once stay consistent and a crash mid-write loses
nothing written before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nemo_run_k8s.errors import JobNotFoundError, RecordsError

_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Candidates listed when an id prefix matches several jobs.
_CANDIDATES_SHOWN = 10

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
    message TEXT NOT NULL DEFAULT '',
    submitter TEXT NOT NULL DEFAULT '{}'
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
    #: Who is launching the job: ``{"host", "pid", "start_time"}``; see :func:`submitter_now`.
    submitter: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> JobRecord:
        values = dict(row)
        values["handle"] = json.loads(values["handle"])
        values["submitter"] = json.loads(values.get("submitter") or "{}")
        return cls(**values)


def submitter_now() -> dict[str, Any]:
    """This process as a record's submitter: host, pid and start time (guards pid reuse)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_time": _start_time(os.getpid()),
    }


def submitter_gone(submitter: dict[str, Any]) -> bool:
    """Whether the recorded submitter has certainly exited.

    Only a process on this host can be checked; one recorded elsewhere (a home
    on a shared file system) counts as alive, so its job is never failed by a
    guess.
    """
    pid = submitter.get("pid")
    if not isinstance(pid, int) or submitter.get("host") != socket.gethostname():
        return False
    if not Path("/proc/self/stat").exists():
        return False  # no /proc here: cannot tell
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] in ("Z", "X") or submitter.get("start_time") not in (None, fields[19])


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


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
            _add_missing_columns(conn)
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
        row["submitter"] = json.dumps(record.submitter, sort_keys=True)
        columns = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        with self._transaction() as conn:
            conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", row)

    def update(self, job_id: str, **fields: Any) -> None:
        for name in ("handle", "submitter"):
            if name in fields:
                fields[name] = json.dumps(fields[name], sort_keys=True)
        fields["updated"] = time.time()
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        with self._transaction() as conn:
            cursor = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = :id", {**fields, "id": job_id}
            )
            if cursor.rowcount == 0:
                raise JobNotFoundError(f"no job record with id {job_id!r}")

    def set_state(self, job_id: str, state: str, message: str | None = None) -> str:
        """Records ``state`` unless a terminal state is recorded already; returns the state kept.

        A terminal state (SUCCEEDED, FAILED, CANCELLED) is final: files removed
        later, or a process that read the backend a moment too early, cannot
        rewrite a job's history.
        """
        fields: dict[str, Any] = {"state": state, "updated": time.time(), "id": job_id}
        extra = ", message = :message" if message is not None else ""
        if message is not None:
            fields["message"] = message
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE jobs SET state = :state, updated = :updated{extra} "
                f"WHERE id = :id AND state NOT IN {_TERMINAL}",
                fields,
            )
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job record with id {job_id!r}")
        return str(row[0])

    def get(self, job_id: str) -> JobRecord:
        """The record of ``job_id``, or of the one job whose id starts with it (like git).

        The prefix is matched literally (``%`` and ``_`` are characters, not
        patterns). An empty id, or a prefix of several ids, is an error that
        lists the candidates.
        """
        if not isinstance(job_id, str) or not job_id.strip():
            raise JobNotFoundError(
                f"no job id given ({job_id!r}); `nemo-run-k8s list` shows the known jobs"
            )
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                rows = conn.execute(
                    "SELECT * FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY created DESC LIMIT ?",
                    (len(job_id), job_id, _CANDIDATES_SHOWN + 1),
                ).fetchall()
                if len(rows) == 1:
                    row = rows[0]
                elif rows:
                    ids = [r["id"] for r in rows[:_CANDIDATES_SHOWN]]
                    more = ", ..." if len(rows) > _CANDIDATES_SHOWN else ""
                    raise JobNotFoundError(
                        f"job id {job_id!r} is ambiguous: it starts {', '.join(ids)}{more}; "
                        "give more of the id"
                    )
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


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Brings a database written by an older version up to the current columns."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "submitter" not in columns:
        try:
            conn.execute("ALTER TABLE jobs ADD COLUMN submitter TEXT NOT NULL DEFAULT '{}'")
        except sqlite3.OperationalError as err:  # another process added it just now
            if "duplicate column" not in str(err):
                raise
