"""Rank 0's outcome file: ``("success", value)`` or ``("error", traceback)``, pickled.

Written atomically by the entrypoint into the job's output directory
(``paths.JobPaths.outcome``); read back by the host backends.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import cloudpickle

from nemo_run_k8s.paths import OUTCOME_FILE


def pickle_outcome(status: str, value: Any, source: str = "the task") -> tuple[str, Any, bytes]:
    """Rank 0's ``(status, value)`` pickled: ``(status, value, bytes)`` as they will be read.

    A value that cannot be pickled (a lock, a generator, an open file) makes the
    outcome an error naming the value's type and ``source`` (what returned it):
    the job then fails instead of succeeding with a message as its result. The
    one place an outcome is pickled, for the file and the log's outcome line.
    """
    try:
        return status, value, cloudpickle.dumps((status, value))
    except Exception as err:
        kind = type(value)
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        text = (
            f"{source} returned a {kind.__module__}.{kind.__qualname__}, which cannot be "
            f"pickled to send it back from the job ({detail}); return plain data "
            "(numbers, strings, lists, dicts, arrays) or write the object to a file"
        )
        return "error", text, cloudpickle.dumps(("error", text))


def store_outcome(output_dir: Path, data: bytes) -> None:
    """Writes pickled outcome ``data`` atomically (temp file, then rename)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".result.", dir=output_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, output_dir / OUTCOME_FILE)


def write_outcome(output_dir: Path, status: str, value: Any, source: str = "the task") -> str:
    """Writes rank 0's ``(status, value)`` atomically; returns the status written
    ("error" when the value cannot be pickled, see :func:`pickle_outcome`)."""
    status, _, data = pickle_outcome(status, value, source)
    store_outcome(output_dir, data)
    return status


def read_outcome(output_dir: Path) -> tuple[str, Any] | None:
    """Rank 0's outcome, or None when it has not been written."""
    path = output_dir / OUTCOME_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        status, value = cloudpickle.loads(data)
    except Exception as err:
        from nemo_run_k8s.errors import BundleError

        raise BundleError(
            f"the job's result {path} cannot be read ({type(err).__name__}: {err}): the file is "
            "damaged, or holds a type this process cannot import; the job's logs "
            "(nemo-run-k8s logs ID) still show what it did"
        ) from err
    return status, value


def peek_outcome_status(output_dir: Path) -> str | None:
    """``"success"`` or ``"error"`` from rank 0's outcome file without unpickling its value.

    None when there is no outcome file (or it is unreadable). Reads only the
    pickle's first opcodes: the status is the first string of the tuple.
    """
    import pickletools

    try:
        with open(output_dir / OUTCOME_FILE, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if isinstance(arg, str) and "UNICODE" in opcode.name:
                    return arg if arg in ("success", "error") else None
    except (OSError, ValueError):
        return None
    return None
