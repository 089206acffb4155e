"""TorchX 0.7.0: 100 job submissions to Kubernetes, dry run, with a workspace.

TorchX has no sweep object: a sweep is one submission per point. With a
workspace, each ``Runner.dryrun`` builds the workspace image (Docker's cache
makes the later ones cheap, but each one tars and sends the directory), so the
count of image builds is one per job. Nothing reaches a cluster: ``dryrun``
stops before scheduling (the image would be pushed to ``image_repo`` at launch).

Usage: python torchx_sweep.py BASE_IMAGE CODE_DIR JOBS REPEATS
Prints one JSON line: {"samples": [...], "builds": per sample, "images": [...]}.
"""

import json
import logging
import sys
import time

from torchx import specs
from torchx.runner import get_runner
from torchx.workspace.docker_workspace import DockerWorkspaceMixin

BUILDS = [0]


def _counting(build):
    def wrapper(*args, **kwargs):
        BUILDS[0] += 1
        return build(*args, **kwargs)

    return wrapper


def main() -> None:
    base, code_dir, jobs, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    logging.disable(logging.WARNING)  # the failed pull of a local-only base image is expected
    build = DockerWorkspaceMixin.build_workspace_and_update_role
    DockerWorkspaceMixin.build_workspace_and_update_role = _counting(build)  # counts builds
    runner = get_runner()
    cfg = {"queue": "default", "image_repo": "registry.invalid/bench/sweep"}
    images, samples, builds = set(), [], 0
    for r in range(repeats + 1):  # the first (cold workspace build) is not counted
        BUILDS[0] = 0
        start = time.perf_counter()
        for i in range(jobs):
            app = specs.AppDef(
                name=f"sweep-{i}",
                roles=[
                    specs.Role(
                        name="trainer",
                        image=base,
                        entrypoint="python3",
                        args=["-m", "benchcode.train", str(1e-4 * (i + 1))],
                        num_replicas=2,
                    )
                ],
            )
            info = runner.dryrun(app, "kubernetes", cfg=cfg, workspace=code_dir)
            images.update(info.request.images_to_push)
        if r:
            samples.append(time.perf_counter() - start)
        builds = BUILDS[0]
    print(json.dumps({"samples": samples, "builds": builds, "images": sorted(images)}))


if __name__ == "__main__":
    main()
