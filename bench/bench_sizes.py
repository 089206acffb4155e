"""Submitting a task that carries a large value: time against one pickle, and what gets written.

Run:  python bench/bench_sizes.py [-n N] [--scale S]

For each workload (a 100 MB ``bytes`` argument, a list of 5 million ints; sizes
times ``--scale``) it times, in this one process and alternating:

- ``cloudpickle.dumps`` of the same task: the baseline, the floor of any submit;
- ``run.dryrun``: bundle written to a temporary directory, plan built;
- ``run.submit`` to the LocalExecutor (returns once the job has started; the
  job is then waited for, untimed);

and prints median times, the ratio to the baseline, and the sizes of what is
written or printed: manifest.json, the dry-run text, config.yaml (absent when
the value is too large to write as YAML). Target: submit within 5x the
baseline; manifest and dry run under 64 KiB. Before summarising, a 100 MB
argument gave a 368 MB manifest, and 5 million ints took 189 s to submit.
A benchmark, not a test: it always exits 0 and prints PASS or FAIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_RATIO = 5.0
TARGET_BYTES = 64 * 1024


def consume(data: Any) -> int:
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3, help="runs per measurement")
    parser.add_argument("--scale", type=float, default=1.0, help="workload size factor")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        os.environ["NEMO_RUN_K8S_HOME"] = home
        import cloudpickle

        import nemo_run_k8s as run

        workloads = {
            f"bytes, {int(100 * args.scale)} MB": os.urandom(int(100_000_000 * args.scale)),
            f"list of {int(5_000_000 * args.scale):,} ints": list(range(int(5e6 * args.scale))),
        }
        print(
            f"runs: {args.n} each; target: submit <= {TARGET_RATIO:.0f}x one pickle, "
            f"manifest and dry run <= {TARGET_BYTES // 1024} KiB"
        )
        header = (
            f"{'workload':<26}{'step':<30}{'median s':>9}{'x pickle':>9}{'written':>14}  verdict"
        )
        print(header)
        for label, data in workloads.items():
            task = run.Partial(consume, data=data)
            timings: dict[str, list[float]] = {
                "cloudpickle.dumps (baseline)": [],
                "run.dryrun": [],
                "run.submit (local)": [],
            }
            sizes: dict[str, str] = {}
            for _ in range(args.n):
                timings["cloudpickle.dumps (baseline)"].append(_timed(cloudpickle.dumps, task)[0])
                seconds, plan = _timed(run.dryrun, task)
                timings["run.dryrun"].append(seconds)
                sizes["run.dryrun"] = f"{len(str(plan)):,} B"
                seconds, job = _timed(run.submit, task)
                timings["run.submit (local)"].append(seconds)
                job.wait()
                bundle = Path(job.record.job_dir) / "bundle"
                manifest = (bundle / "manifest.json").stat().st_size
                yaml = bundle / "config.yaml"
                sizes["run.submit (local)"] = f"{manifest:,} B" + (
                    f" + yaml {yaml.stat().st_size:,} B" if yaml.exists() else ""
                )
            base = statistics.median(timings["cloudpickle.dumps (baseline)"])
            for step, samples in timings.items():
                med = statistics.median(samples)
                ratio = med / base
                verdict = ""
                if step != "cloudpickle.dumps (baseline)":
                    size = int(sizes[step].split()[0].replace(",", ""))
                    ok = size <= TARGET_BYTES and (step == "run.dryrun" or ratio <= TARGET_RATIO)
                    verdict = "PASS" if ok else "FAIL"
                print(
                    f"{label:<26}{step:<30}{med:>9.2f}{ratio:>8.1f}x{sizes.get(step, '-'):>14}"
                    f"  {verdict}"
                )
    return 0


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


if __name__ == "__main__":
    sys.exit(main())
