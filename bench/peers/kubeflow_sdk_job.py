"""The Kubeflow training SDK 1.9 on the same cluster: the same 2-node x 2-process PyTorchJob.

Usage: python kubeflow_sdk_job.py KUBECONFIG NAMESPACE IMAGE N
``TrainingClient.create_job`` with ``train_func`` (the SDK ships the function's source and runs
it with torchrun in ``IMAGE``, the image nemo_run_k8s built and pushed for the same work), then
``wait_for_job_conditions`` and the master's log for the result. One untimed warm-up, N timed.
Prints one JSON line: {"samples": [...], "result": the sum}.
"""

from __future__ import annotations

import json
import re
import sys
import time

from bench_tasks import allreduce_sum  # type: ignore[import-not-found]
from kubeflow.training import TrainingClient


def main() -> None:
    kubeconfig, namespace, image, n = sys.argv[1:5]
    client = TrainingClient(config_file=kubeconfig, namespace=namespace, job_kind="PyTorchJob")
    samples, result = [], None
    for i in range(int(n) + 1):
        name = f"sdk-allreduce-{i}-{time.time_ns() % 10**6}"
        start = time.perf_counter()
        client.create_job(
            name=name,
            base_image=image,
            train_func=allreduce_sum,
            num_workers=2,
            num_procs_per_worker=2,
        )
        client.wait_for_job_conditions(name, timeout=600, polling_interval=1)
        logs, _ = client.get_job_logs(name, is_master=True)
        found = re.findall(r"RESULT (\d+)", "\n".join(logs.values()))
        elapsed = time.perf_counter() - start
        client.delete_job(name)
        result = int(found[-1]) if found else None
        if result != 6:
            print(json.dumps({"error": f"the SDK's job printed {found!r}, not RESULT 6"}))
            return
        if i:
            samples.append(elapsed)
    print(json.dumps({"samples": samples, "result": result}))


if __name__ == "__main__":
    main()
