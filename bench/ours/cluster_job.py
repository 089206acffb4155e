"""nemo_run_k8s on a real cluster: a 2-node x 2-process PyTorchJob, submit to result.

Usage: python cluster_job.py KUBECONFIG NAMESPACE IMAGE_REPO BASE_IMAGE N
One untimed warm-up job (it builds and pushes the job image), then N timed jobs, each
``run.submit(...).result()`` with nothing cached but the image. Prints one JSON line:
{"samples": [...], "image": the pushed job image (repo@sha256:...), "result": the sum}.
"""

from __future__ import annotations

import json
import sys
import time

from bench_tasks import allreduce_sum  # type: ignore[import-not-found]

import nemo_run_k8s as run


def main() -> None:
    kubeconfig, namespace, repo, base, n = sys.argv[1:6]
    executor = run.KubernetesExecutor(
        namespace=namespace,
        image_repo=repo,
        kubeconfig=kubeconfig,
        base_image=base,
        num_nodes=2,
        nproc_per_node=2,
        shm_size="256Mi",
        restart_policy="Never",
        backoff_limit=0,
    )
    samples, image, result = [], "", None
    for i in range(int(n) + 1):
        start = time.perf_counter()
        job = run.submit(run.Partial(allreduce_sum), executor, name="bench-allreduce")
        result = job.result(timeout=600)
        elapsed = time.perf_counter() - start
        image = job.record.handle["image"]
        job.cancel()  # removes the PyTorchJob and its pods before the next sample
        if result != 6:
            print(json.dumps({"error": f"the job returned {result!r}, not 6"}))
            return
        if i:
            samples.append(elapsed)
    print(json.dumps({"samples": samples, "image": image, "result": result}))


if __name__ == "__main__":
    main()
