"""nemo_run_k8s: a new job image after a config-only or a one-file code change, in-process.

The same work as bench/peers/torchx_workspace.py: the same base image and code
directory; the job is ``benchcode.train.train(lr)`` from that directory. A
config-only change is a new ``lr`` (a new bundle); a one-file code change edits
benchcode/model.py. The first build (environment image, wheels, preflight) is
not counted.

Usage: python image_builds.py BASE_IMAGE CODE_DIR N {config,onefile,imported}
Prints one JSON line: {"samples": [...], "builds": per sample, "images": [...]}.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from codedirs import change_one_file

import nemo_run_k8s as run
from nemo_run_k8s.spec import ImageSpec, Resources


@dataclasses.dataclass
class ImageTarget:
    """What build_image reads from an executor: the base image and the code directory."""

    base_image: str
    code_dir: str

    def resources(self) -> Resources:
        return Resources()

    def code_dirs(self) -> tuple[str, ...]:
        return (self.code_dir,)

    def image_spec(self) -> ImageSpec:
        return ImageSpec(self.base_image, self.code_dir)


def main() -> None:
    base, code_dir, n, change = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    sys.path.insert(0, code_dir)
    from benchcode.train import train  # type: ignore[import-not-found]

    target = ImageTarget(base, code_dir)
    images: set[str] = set()
    samples = []
    for i in range(n + 1):  # the first build (cold) is not counted
        if change in ("onefile", "imported"):
            change_one_file(Path(code_dir), time.time_ns(), imported=change == "imported")
        task = run.Partial(train, lr=0.1 + i + time.time_ns() % 10**6 / 10**9)
        start = time.perf_counter()
        image = run.build_image(task, target, quiet=True)
        elapsed = time.perf_counter() - start
        if not image.built:
            raise SystemExit(f"{image.ref} already existed: the change built nothing")
        images.update((image.ref, image.env_ref))
        if i:
            samples.append(elapsed)
    print(json.dumps({"samples": samples, "builds": 1, "images": sorted(images)}))


if __name__ == "__main__":
    main()
