"""NeMo-Run: a trivial Partial through run.run on its LocalExecutor (timed as a whole process).

Run with the NeMo-Run environment's python and its bin/ first on PATH (NeMo-Run starts
the job with the `python` it finds there); bench_tasks must be importable (PYTHONPATH).
run.run returns normally even when the job failed, so the job writes a marker file.
"""

import sys

import nemo_run as run
from bench_tasks import check_marker, trivial

if __name__ == "__main__":
    marker = sys.argv[1]
    run.run(run.Partial(trivial, marker=marker), executor=run.LocalExecutor())
    check_marker(marker)
