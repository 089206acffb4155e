"""The Kubeflow training SDK 1.9: a 100-job sweep created on the real API server.

The SDK has no sweep: one ``TrainingClient.create_job`` per point (2 nodes each, the function's
source shipped in the command, ``IMAGE`` as the base image). The namespace's ResourceQuota
allows no pods, so the jobs are created and validated but never run, as in ours.

Usage: python kubeflow_sdk_sweep.py KUBECONFIG NAMESPACE IMAGE JOBS REPEATS
Prints one JSON line: {"samples": [...]}.
"""

from __future__ import annotations

import json
import sys
import time

from bench_tasks import trivial  # type: ignore[import-not-found]
from kubeflow.training import TrainingClient


def main() -> None:
    kubeconfig, namespace, image, jobs, repeats = sys.argv[1:6]
    client = TrainingClient(config_file=kubeconfig, namespace=namespace, job_kind="PyTorchJob")
    samples = []
    for i in range(int(repeats) + 1):  # the first (client warm-up) not counted
        start = time.perf_counter()
        for j in range(int(jobs)):
            client.create_job(
                name=f"sdk-sweep-{i}-{j}-{time.time_ns() % 10**6}",
                base_image=image,
                train_func=trivial,
                parameters={"marker": f"point-{j}"},
                num_workers=2,
            )
        if i:
            samples.append(time.perf_counter() - start)
    print(json.dumps({"samples": samples}))


if __name__ == "__main__":
    main()
