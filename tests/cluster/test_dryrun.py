"""The dry run is what the real API server (with the operator's webhook) accepts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cluster.conftest import REPO_ROOT, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def test_dryrun_is_accepted_by_kubectl_apply_dry_run_server(
    cluster: Cluster, namespace: str, image_repo: str, tmp_path: object
) -> None:
    args = [
        sys.executable, "-m", "nemo_run_k8s.cli", "dryrun", "tests.cluster.tasks:square",
        "x=3", "--partial", "--executor", "k8s", "--image-repo", image_repo,
        "--namespace", namespace, "--num-nodes", "2", "--nproc-per-node", "2",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    plan = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert plan.returncode == 0, plan.stderr
    assert "kind: PyTorchJob" in plan.stdout
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=plan.stdout)
    assert "pytorchjob.kubeflow.org/" in out and "(server dry run)" in out, out

    # The webhook runs on a server dry run: a manifest it refuses is refused here too.
    broken = plan.stdout.replace("name: pytorch\n", "name: not-pytorch\n")
    proc = subprocess.run(
        [*cluster_kubectl(cluster), "apply", "--dry-run=server", "-f", "-"],
        input=broken, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "pytorch" in proc.stderr and "denied the request" in proc.stderr, proc.stderr


def cluster_kubectl(cluster: Cluster) -> list[str]:
    from tests.cluster.conftest import tool

    return [tool("kubectl"), "--kubeconfig", cluster.kubeconfig]
