"""TorchX 0.7.0: a trivial 2-replica job on `local_docker`, submitted and waited for.

The role image is the local base image, the command ``python3 -c 'print(1)'``;
``runner.wait`` polls once a second, as ``torchx run --wait`` does. Timed as a
whole process; exits non-zero unless the job succeeded.

Usage: python torchx_local_docker.py BASE_IMAGE
"""

import logging
import sys

from torchx import specs
from torchx.runner import get_runner


def main() -> None:
    logging.disable(logging.WARNING)  # the failed pull of a local-only base image is expected
    app = specs.AppDef(
        name="bench",
        roles=[
            specs.Role(
                name="trainer",
                image=sys.argv[1],
                entrypoint="python3",
                args=["-c", "print(1)"],
                num_replicas=2,
            )
        ],
    )
    with get_runner() as runner:
        handle = runner.run(app, "local_docker")
        status = runner.wait(handle, wait_interval=1)
    if status is None or status.state != specs.AppState.SUCCEEDED:
        sys.exit(f"torchx job {handle} ended as {status}")


if __name__ == "__main__":
    main()
