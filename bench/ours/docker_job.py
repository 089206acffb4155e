"""nemo_run_k8s: a trivial 2-node job on the DockerExecutor, submitted and waited for.

The same work as bench/peers/torchx_local_docker.py, on the same base image.
Timed as a whole process; the job image is built by the untimed warm-up run
and found by its content tag afterwards. Exits 3 with "NOT AVAILABLE: ..." when
this checkout has no DockerExecutor yet.

Usage: python docker_job.py BASE_IMAGE [NETWORK]   (NETWORK: host, the default, or job)
"""

import sys

from bench_tasks import trivial

import nemo_run_k8s as run


def main() -> None:
    try:
        options = {"network": sys.argv[2]} if len(sys.argv) > 2 else {}
        executor = run.DockerExecutor(num_nodes=2, base_image=sys.argv[1], **options)
    except (AttributeError, ImportError, TypeError) as err:
        print(f"NOT AVAILABLE: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(3)
    job = run.run(run.Partial(trivial), executor=executor)
    if job.result() != 1:
        sys.exit(f"job {job.id} returned {job.result()!r}")


if __name__ == "__main__":
    main()
