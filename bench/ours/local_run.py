"""nemo_run_k8s: a trivial Partial through run.run on the LocalExecutor (whole process timed).

The same work as bench/peers/nemo_run_local.py; bench_tasks must be importable (PYTHONPATH).
"""

import sys

from bench_tasks import check_marker, trivial

import nemo_run_k8s as run

if __name__ == "__main__":
    marker = sys.argv[1]
    run.run(run.Partial(trivial, marker=marker), executor=run.LocalExecutor())
    check_marker(marker)
