"""A 2-node x 2-process PyTorchJob on the real operator: rendezvous through the master's
Service name and cluster DNS, the result and logs back through the API, and the CLI from a
second process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

import nemo_run_k8s as run
from tests.cluster import tasks
from tests.cluster.conftest import REPO_ROOT, Cluster
from tests.cluster.helpers import bare, cli, eventually, wait_for_line

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def test_two_nodes_two_processes_all_reduce(
    cluster: Cluster, namespace: str, executor: Any
) -> None:
    ex = executor(num_nodes=2, nproc_per_node=2)
    job = run.submit(run.Partial(tasks.allreduce_rank), ex, name="allreduce")
    assert job.result(timeout=600) == 6  # 0 + 1 + 2 + 3, rank 0's return value from its log
    handle = job.record.handle
    for replica, ranks in (("master", (0, 1)), ("worker", (2, 3))):
        lines = [bare(x) for x in run.KubernetesExecutor.logs(handle, replica=replica, index=0)]
        for rank in ranks:
            assert f"all_reduce rank={rank} sum=6 world=4" in lines, "\n".join(lines)
    every = list(job.logs())  # all replicas, each line saying where it came from
    assert "[master0 rank0] all_reduce rank=0 sum=6 world=4" in every, "\n".join(every)
    assert "[worker0 rank3] all_reduce rank=3 sum=6 world=4" in every, "\n".join(every)
    assert handle["image"].startswith(ex.image_repo + "@sha256:")  # pulled by digest

    # What the operator made of our PyTorchJob: pod names, env, init container, the Service.
    name = handle["name"]
    pods = {p.metadata.name: p for p in cluster.pods(namespace, name)}
    assert sorted(pods) == [f"{name}-master-0", f"{name}-worker-0"]
    for pod_name, pod in pods.items():
        container = next(c for c in pod.spec.containers if c.name == "pytorch")
        env = {e.name: e.value for e in container.env or [] if e.value is not None}
        assert env["MASTER_ADDR"] == f"{name}-master-0", env
        assert env["PET_NNODES"] == "2" and env["PET_NPROC_PER_NODE"] == "2", env
        assert env["PET_NODE_RANK"] == ("0" if "master" in pod_name else "1"), env
        assert container.image == handle["image"]
        assert pod.spec.service_account_name == "nemo-run-jobs"
        assert pod.status.phase == "Succeeded"
    worker_pod = pods[f"{name}-worker-0"]
    init = worker_pod.spec.init_containers or []
    assert [c.name for c in init] == ["init-pytorch"], "the operator's DNS wait on workers"
    assert not (pods[f"{name}-master-0"].spec.init_containers or [])
    service = cluster.core.read_namespaced_service(f"{name}-master-0", namespace)
    assert service.spec.cluster_ip == "None"  # headless: DNS answers with the pod's address
    assert [p.port for p in service.spec.ports] == [int(env["MASTER_PORT"])]


def test_cli_lists_follows_and_cancels_from_a_second_process(
    cluster: Cluster, namespace: str, executor: Any
) -> None:
    job = run.submit(run.Partial(tasks.ticks, seconds=600), executor(), name="cli")
    name = job.record.handle["name"]
    wait_for_line(job, "tick 1")
    listed = json.loads(cli("list", "--output", "json").stdout)
    assert [(j["id"], j["state"]) for j in listed if j["id"] == job.id] == [(job.id, "RUNNING")]
    assert json.loads(cli("status", job.id, "--output", "json").stdout)["state"] == "RUNNING"
    follower = subprocess.Popen(
        [sys.executable, "-m", "nemo_run_k8s.cli", "logs", "-f", job.id],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        seen = [bare(follower.stdout.readline().rstrip("\n")) for _ in range(3)]
        assert seen == ["tick 0", "tick 1", "tick 2"]
        started = time.monotonic()
        cli("cancel", job.id, timeout=300)
        # The followed stream ends once the pod is gone.
        follower.wait(timeout=120)
        assert time.monotonic() - started < 120
    finally:
        follower.kill()
    assert json.loads(cli("status", job.id, "--output", "json").stdout)["state"] == "CANCELLED"
    assert cluster.pytorchjob(namespace, name) is None
    eventually(lambda: cluster.pods(namespace, name) == [], 60, "pods gone")
