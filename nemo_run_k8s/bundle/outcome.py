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
