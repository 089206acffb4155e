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


def write_outcome(output_dir: Path, status: str, value: Any) -> None:
    """Writes rank 0's ``(status, value)`` atomically (temp file, then rename)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        data = cloudpickle.dumps((status, value))
    except Exception as err:
        data = cloudpickle.dumps(
            ("error", f"the job returned a {type(value).__name__} that cannot be pickled: {err}")
        )
    fd, tmp = tempfile.mkstemp(prefix=".result.", dir=output_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, output_dir / OUTCOME_FILE)


def read_outcome(output_dir: Path) -> tuple[str, Any] | None:
    """Rank 0's outcome, or None when it has not been written."""
    try:
        data = (output_dir / OUTCOME_FILE).read_bytes()
    except FileNotFoundError:
        return None
    status, value = cloudpickle.loads(data)
    return status, value
