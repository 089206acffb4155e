"""Start-up time of the nemo-run-k8s command: `--help` and `list`, whole processes.

Run:  python bench/bench_cli.py [N]
Target: each median <= 0.3 s. Baseline in the same run: a bare `python -c pass`.
`list` runs against a temporary record store holding 50 finished jobs.
A benchmark, not a test: it always exits 0 and prints PASS or FAIL.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.3


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NEMO_RUN_K8S_HOME": home, "PYTHONPATH": str(REPO)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode, as a user's Python has it
        _fill_records(env)
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "nemo-run-k8s --help": [sys.executable, "-m", "nemo_run_k8s.cli", "--help"],
            "nemo-run-k8s list (50 jobs)": [sys.executable, "-m", "nemo_run_k8s.cli", "list"],
        }
        samples: dict[str, list[float]] = {k: [] for k in commands}
        for cmd in commands.values():
            subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm-up
        for _ in range(n):
            for label, cmd in commands.items():
                start = time.perf_counter()
                subprocess.run(cmd, env=env, capture_output=True, check=True)
                samples[label].append(time.perf_counter() - start)
    print(f"runs: {n} each, alternating; target: median <= {TARGET:.2f} s")
    print(f"{'command':<30}{'median ms':>11}{'min ms':>9}{'max ms':>9}  verdict")
    for label, times in samples.items():
        med = statistics.median(times)
        verdict = "" if "baseline" in label else ("PASS" if med <= TARGET else "FAIL")
        print(
            f"{label:<30}{med * 1e3:>11.1f}{min(times) * 1e3:>9.1f}{max(times) * 1e3:>9.1f}"
            f"  {verdict}"
        )
    return 0


def _fill_records(env: dict[str, str]) -> None:
    code = (
        "import time\n"
        "from nemo_run_k8s.records import JobRecord, Records\n"
        "r = Records()\n"
        "for i in range(50):\n"
        "    r.add(JobRecord(id=f'job-{i:04d}', name='bench', experiment=None, executor='local',\n"
        "        handle={}, bundle_sha256='0'*64, created=time.time(), state='SUCCEEDED',\n"
        "        updated=time.time(), job_dir='/nonexistent'))\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


if __name__ == "__main__":
    sys.exit(main())
