"""How long `import nemo_run_k8s` takes, against the floor of importing its own dependencies.

Each sample is a whole fresh process (`python -c "import ..."`), so interpreter
start-up is in both columns. The floor is `import fiddle, cloudpickle`: what any
nemo_run_k8s import must pay at least. The two commands alternate, N runs each,
after one untimed warm-up run of each (to fill the page cache).

Run:  python bench/bench_import.py [N]
Names in nemo_run_k8s load lazily, so a bare import is far below the floor;
the second row pays for the first use of ``run.Config`` (which loads fiddle).
Target: median(ours) <= 1.15 x median(floor), for both rows. This is a benchmark, not a test:
it always exits 0 and prints PASS or FAIL against the target.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.15
COMMANDS = {
    "import nemo_run_k8s": "import nemo_run_k8s",
    # Names load lazily, so the honest comparison also pays for first use of a config.
    "import + first run.Config": "import nemo_run_k8s as run; run.Config",
    "import fiddle, cloudpickle (floor)": "import fiddle, cloudpickle",
}


def time_once(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True)
    return time.perf_counter() - start


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode, as a user's Python has it
    samples: dict[str, list[float]] = {label: [] for label in COMMANDS}
    try:
        for code in COMMANDS.values():
            time_once(code, env)  # warm-up, not counted
        for _ in range(n):
            for label, code in COMMANDS.items():
                samples[label].append(time_once(code, env))
    except subprocess.CalledProcessError as err:
        print(f"ERROR: {err.cmd[-1]!r} failed (exit {err.returncode}); no measurement")
        return 0

    print(f"python: {sys.executable}  runs: {n} each, alternating")
    print(f"{'command':<38}{'median ms':>11}{'min ms':>9}{'max ms':>9}")
    for label, times in samples.items():
        print(
            f"{label:<38}{statistics.median(times) * 1e3:>11.1f}"
            f"{min(times) * 1e3:>9.1f}{max(times) * 1e3:>9.1f}"
        )
    bare, first_use, floor = (statistics.median(t) for t in samples.values())
    for label, ours in (("import", bare), ("import + first use", first_use)):
        ratio = ours / floor
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"{label}: ours/floor (medians) {ratio:.3f}x  target <= {TARGET:.2f}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
