"""Item 1: submitting from many threads at once is safe.

cloudpickle's by-value registration of a module is process-global: one thread
unregistering a user module while another pickles with it made submissions
fail (``ValueError: ... is not registered for pickle by value``) or ship the
module by reference, so the job could not import it. Bundling now holds one
process-wide lock while it registers, pickles and unregisters.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.paths import JobPaths

THREADS, JOBS = 8, 16


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[object]:
    """A module of the user's that the jobs cannot import: it must travel by value."""
    name = f"faults_threads_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import time

            class Slow:
                # takes a moment to pickle, as a large argument does: threads overlap

                def __init__(self, i):
                    self.i = i

                def __reduce__(self):
                    time.sleep(0.05)
                    return (Slow, (self.i,))

            def double(slow):
                return {"value": 2 * slow.i, "module": __name__}
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__(name)
        yield module
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_sixteen_submissions_from_eight_threads(user_module: object) -> None:
    start = threading.Barrier(THREADS)

    def submit(i: int) -> run.Job:
        if i < THREADS:
            start.wait()  # the first round all at once
        return run.submit(
            run.Partial(user_module.double, user_module.Slow(i)),  # type: ignore[attr-defined]
            run.LocalExecutor(fork=False),
        )

    with ThreadPoolExecutor(THREADS) as pool:
        jobs = list(pool.map(submit, range(JOBS)))
    for i, job in enumerate(jobs):
        manifest = json.loads(
            (JobPaths(Path(job.record.job_dir)).bundle / "manifest.json").read_text()
        )
        assert manifest["by_value_modules"] == [user_module.__name__]  # type: ignore[attr-defined]
        assert job.result() == {"value": 2 * i, "module": user_module.__name__}  # type: ignore[attr-defined]
