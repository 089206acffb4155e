"""nemo_run_k8s: a 100-job sweep on the KubernetesExecutor, dry run or launched.

``dry``: ``run.sweep(...).dryrun()``, the plans of all jobs (no image, no cluster).
``cluster``: ``launch()`` against the real API server of ``$NRK_BENCH_KUBECONFIG`` into
``$NRK_BENCH_NAMESPACE`` (whose ResourceQuota allows no pods, so the jobs are created and
validated, webhook included, but never run), images pushed to the registry given.
``launch``: ``run.sweep(...).launch()`` against a stand-in API server started
here (it accepts PyTorchJob creations and nothing more) with images pushed to
the registry given (e.g. a local ``docker-registry`` at 127.0.0.1:5000). The
experiment builds one image for all its jobs; the count of image builds is
measured by counting calls to the image builder.

Usage: python sweep.py BASE_IMAGE CODE_DIR JOBS REPEATS {dry,launch,cluster} [REGISTRY]
Prints one JSON line: {"samples": [...], "builds": per sample, "images": [...]};
exits 3 with "NOT AVAILABLE: ..." when this checkout has no KubernetesExecutor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nemo_run_k8s as run
from nemo_run_k8s.image import builder as image_module

BUILDS = [0]
IMAGES: set[str] = set()


def main() -> None:
    base, code_dir, jobs, repeats, mode = sys.argv[1:6]
    registry = sys.argv[6] if len(sys.argv) > 6 else None
    sys.path.insert(0, code_dir)
    from benchcode.train import train  # type: ignore[import-not-found]

    _count_builds()
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        options: dict[str, Any] = {
            "num_nodes": 2,
            "base_image": base,
            "image_repo": "registry.invalid/nemo-run-k8s-bench/sweep",  # dry: never contacted
        }
        if mode == "launch":
            from fake_apiserver import serve  # type: ignore[import-not-found]

            options["kubeconfig"] = str(serve(Path(tmp)))
            options["image_repo"] = f"{registry}/nemo-run-k8s-bench/sweep"
        elif mode == "cluster":
            options["kubeconfig"] = os.environ["NRK_BENCH_KUBECONFIG"]
            options["namespace"] = os.environ["NRK_BENCH_NAMESPACE"]
            options["image_repo"] = f"{registry}/nemo-run-k8s-bench/sweep"
        for i in range(int(repeats) + 1):  # the first (cold: base image, push) not counted
            executor = _executor(options, code_dir)
            salt = time.time_ns() % 997 * 1e-9  # new values each repeat: new bundles
            grid = {"lr": [round(1e-4 * (i + 1), 6) + salt for i in range(int(jobs))]}
            BUILDS[0] = 0
            start = time.perf_counter()
            exp = run.sweep(run.Partial(train, lr=0.1), grid, executor=executor)
            if mode in ("launch", "cluster"):
                exp.launch()
            else:
                exp.dryrun()
            if i:
                samples.append(time.perf_counter() - start)
    print(json.dumps({"samples": samples, "builds": BUILDS[0], "images": sorted(IMAGES)}))


def _executor(options: dict[str, Any], code_dir: str) -> Any:
    try:
        cls = run.KubernetesExecutor
    except (AttributeError, ImportError) as err:
        print(f"NOT AVAILABLE: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(3)
    if dataclasses.is_dataclass(cls) and "code_dir" in {f.name for f in dataclasses.fields(cls)}:
        options = {**options, "code_dir": code_dir}
    return cls(**options)


def _count_builds() -> None:
    build = image_module.ImageBuilder.build

    def counting(self: Any, bundles: Any, spec: Any) -> Any:
        BUILDS[0] += 1
        result = build(self, bundles, spec)
        IMAGES.update((result.ref, result.env_ref))
        return result

    image_module.ImageBuilder.build = counting  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
