"""Where the time of a new job image goes: a config-only change and one-file changes.

    PYTHONPATH=. python bench/bench_image.py [-n 5] [--mb 10] [--base-image IMAGE]

In this one process, on a code directory of ``--mb`` MB (bench/workloads/codedirs.py),
each sample makes the change and calls ``run.build_image`` for
``run.Partial(benchcode.train.train, lr=...)``, timing each phase of the builder:

- config-only: a new ``lr`` (a new bundle), the code unchanged;
- one-file change: ``benchcode/model.py`` edited (the job does not import it);
- imported one-file change: ``benchcode/used.py`` edited (the job imports it, so
  the in-image import check runs again).

The first build (environment image, wheels, the check) is not counted. The floor
row is Docker alone adding a 4 KB layer to an existing image with one ``docker
load`` (bench/ours/layer_floor.py). Needs a running engine and the base image;
records and caches go to a temporary NEMO_RUN_K8S_HOME.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH / "workloads"), str(BENCH / "ours")]

PHASES = [  # (owner, attribute, label); nested phases are indented
    ("builder", "_bundle_for", "bundle (pickle the task)"),
    ("ImageBuilder", "__init__", "engine ping"),
    ("ImageBuilder", "base_info", "base image info (cached)"),
    ("ImageBuilder", "environment", "environment image (found or made)"),
    ("ImageBuilder", "_base_key", "  key of base + wheels (cached)"),
    ("builder", "code_files", "  list the code directory"),
    ("ImageBuilder", "_hashed", "  hash the code (by stat)"),
    ("ImageBuilder", "_overlay", "  layer of changed files"),
    ("ImageBuilder", "_docker_build", "  full build (not expected)"),
    ("ImageBuilder", "_add_bundle_layer", "add layer(s): one docker load"),
    ("ImageBuilder", "check_image", "in-image import check"),
    ("ImageBuilder", "_run_once", "  the check's container"),
]


def instrument(marks: dict[str, float]) -> None:
    from nemo_run_k8s.image import builder

    for owner_name, attribute, label in PHASES:
        owner: Any = builder if owner_name == "builder" else builder.ImageBuilder
        setattr(owner, attribute, timed(marks, label, getattr(owner, attribute)))


def timed(marks: dict[str, float], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
            if label == "  list the code directory":
                result = list(result)  # a generator: time its work
            return result
        finally:
            marks[label] = marks.get(label, 0.0) + time.perf_counter() - start

    return wrapper


class Target:
    """What build_image reads from an executor."""

    kind = "bench"

    def __init__(self, base_image: str, code_dir: str):
        self.base_image, self.code_dir = base_image, code_dir

    def resources(self) -> Any:
        from nemo_run_k8s.spec import Resources

        return Resources()

    def code_dirs(self) -> tuple[str, ...]:
        return (self.code_dir,)

    def image_spec(self) -> Any:
        from nemo_run_k8s.spec import ImageSpec

        return ImageSpec(self.base_image, self.code_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5, help="samples per change")
    parser.add_argument("--mb", type=int, default=10, help="size of the code directory")
    parser.add_argument("--base-image", default="nemo-run-k8s/base-python:local")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        os.environ["NEMO_RUN_K8S_HOME"] = home
        from codedirs import change_one_file, make_code_dir  # type: ignore[import-not-found]

        import nemo_run_k8s as run

        code = make_code_dir(Path(home) / "code", opts.mb)
        sys.path.insert(0, str(code))
        from benchcode.train import train  # type: ignore[import-not-found]

        target = Target(opts.base_image, str(code))
        marks: dict[str, float] = {}
        instrument(marks)
        images: set[str] = set()
        results: dict[str, list[dict[str, float]]] = {}
        for change in ("config-only", "one-file", "imported one-file"):
            for i in range(opts.n + 1):
                if change != "config-only":
                    change_one_file(code, time.time_ns(), imported=change.startswith("imported"))
                marks.clear()
                start = time.perf_counter()
                image = run.build_image(run.Partial(train, lr=time.time_ns() % 10**9), target)
                marks["total"] = time.perf_counter() - start
                images.update((image.ref, image.env_ref))
                if i:
                    results.setdefault(change, []).append(dict(marks))
        floor = subprocess.run(
            [
                sys.executable,
                str(BENCH / "ours" / "layer_floor.py"),
                opts.base_image,
                str(opts.n),
                "load",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        floor_result = json.loads(floor.stdout.strip().splitlines()[-1])
        subprocess.run(["docker", "rmi", *images, *floor_result["images"]], capture_output=True)

    changes = list(results)
    print(f"{opts.mb} MB code, n={opts.n}, median ms " + " ".join(f"{c:>18}" for c in changes))
    for _, _, label in [*PHASES, ("", "", "total")]:
        values = [statistics.median(s.get(label, 0.0) for s in results[c]) for c in changes]
        if any(values):
            print(f"{label:<40}" + " ".join(f"{v * 1e3:18.1f}" for v in values))
    floor_ms = statistics.median(floor_result["samples"]) * 1e3
    print(f"{'floor: docker load of a 4 KB layer':<40}{floor_ms:18.1f}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
