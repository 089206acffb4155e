"""TorchX 0.7.0: the job image a `--workspace` submission builds, timed in-process.

TorchX builds a workspace image on every submission: ``Runner.dryrun`` with a
workspace calls ``DockerWorkspaceMixin.build_workspace_and_update_role``, which
tars the whole directory and runs ``FROM <role image>; COPY . .`` (Docker's layer
cache skips the COPY when no file changed). A "config-only change" is a new
argument, so the same build; a "one-file code change" edits benchcode/model.py.

Usage: python torchx_workspace.py BASE_IMAGE CODE_DIR N {config,onefile,imported}
Prints one JSON line: {"samples": [...], "builds": per sample, "images": [...]}.
"""

import json
import logging
import sys
import time
from pathlib import Path

from codedirs import change_one_file
from torchx import specs
from torchx.runner import get_runner


def main() -> None:
    base, code_dir, n, change = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    logging.disable(logging.WARNING)  # the failed pull of a local-only base image is expected
    runner = get_runner()
    images, samples = set(), []
    for i in range(n + 1):  # the first build (cold) is not counted
        if change in ("onefile", "imported"):
            change_one_file(Path(code_dir), time.time_ns(), imported=change == "imported")
        app = specs.AppDef(
            name="bench",
            roles=[
                specs.Role(
                    name="trainer",
                    image=base,
                    entrypoint="python3",
                    args=["-m", "benchcode.train", str(0.1 + i)],
                )
            ],
        )
        start = time.perf_counter()
        info = runner.dryrun(app, "local_docker", cfg={}, workspace=code_dir)
        elapsed = time.perf_counter() - start
        image = info.request.containers[0].image
        if image == base:
            raise SystemExit("torchx did not build a workspace image")
        images.add(image)
        if i:
            samples.append(elapsed)
    print(json.dumps({"samples": samples, "builds": 1, "images": sorted(images)}))


if __name__ == "__main__":
    main()
