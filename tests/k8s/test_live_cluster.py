"""A tiny PyTorchJob on the cluster KUBECONFIG points at (marker ``k8s``; skips without one).

Needs the Kubeflow training operator on the cluster and an image with ``python3``
that the cluster can pull, pinned by digest, in ``NEMO_RUN_K8S_LIVE_IMAGE``
(e.g. ``docker.io/library/python@sha256:...``). The job does not run the
project's entrypoint: it prints a few lines and the outcome line, which is
enough to check submit, state, logs, outcome and cancel for real.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from nemo_run_k8s.errors import SubmissionError
from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
from nemo_run_k8s.spec import JobIdentity, JobState
from tests.k8s.lifecycle import fake_bundle, outcome_line

pytestmark = pytest.mark.k8s


def _cluster_or_skip() -> None:
    try:
        from kubernetes import client, config

        api = config.new_client_from_config(persist_config=False)
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as err:  # any failure means: no usable cluster here
        pytest.skip(f"no Kubernetes cluster answers through KUBECONFIG ({type(err).__name__})")


class LiveImageExecutor(KubernetesExecutor):
    def _resolve_image(self, bundle: Any, prebuilt: str | None = None) -> str:
        return os.environ["NEMO_RUN_K8S_LIVE_IMAGE"]


def test_tiny_job_runs_on_the_cluster(tmp_path: Path) -> None:
    _cluster_or_skip()
    image = os.environ.get("NEMO_RUN_K8S_LIVE_IMAGE", "")
    if "@sha256:" not in image:
        pytest.skip("set NEMO_RUN_K8S_LIVE_IMAGE to a python3 image pinned by digest")
    namespace = os.environ.get("NEMO_RUN_K8S_LIVE_NAMESPACE", "default")
    executor = LiveImageExecutor(
        namespace=namespace,
        image_repo=image.split("@")[0],
        restart_policy="Never",
        backoff_limit=0,
        shm_size="64Mi",
        cpu="100m",
        memory="128Mi",
    )
    try:
        executor.check_backend()
    except SubmissionError as err:
        if "training operator is not installed" in str(err):
            pytest.skip(str(err))
        raise
    job = JobIdentity(job_id=uuid.uuid4().hex[:8], name="live-test", job_dir=tmp_path)
    bundle = fake_bundle(tmp_path)
    plan = executor.plan(bundle, job)
    script = f"print('hello from rank 0'); print({outcome_line(('success', 42))!r})"
    container = plan.documents[0]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"
    ][0]
    container["command"] = ["python3", "-c", script]
    handle = executor.launch(plan, bundle, job)
    try:
        lines = list(KubernetesExecutor.logs(handle, follow=True))
        command = shlex.join(container["command"])
        assert "[master0 rank0] hello from rank 0" in lines, f"logs: {lines} ({command})"
        deadline = time.monotonic() + 120
        while not (state := KubernetesExecutor.state(handle)).is_terminal:
            assert time.monotonic() < deadline, "job did not finish in 120 s"
            time.sleep(2)
        assert state == JobState.SUCCEEDED, KubernetesExecutor.reason(handle)
        assert KubernetesExecutor.outcome(handle) == ("success", 42)
    finally:
        KubernetesExecutor.cancel(handle)
    assert KubernetesExecutor.state(handle) == JobState.CANCELLED
