"""Drives every Kubernetes API call the KubernetesExecutor can make, against the fake server.

:func:`run_full_lifecycle` is shared: the contract tests run it, and the Helm
chart's RBAC test runs it and compares ``server.rbac_calls()`` with the rules of
the chart's Role. When the executor gains an API call, exercise it here.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
from kubernetes.client import CoreV1Api, CustomObjectsApi  # noqa: F401  (import cost up front)

from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
from nemo_run_k8s.spec import JobIdentity, JobState
from tests.k8s.fake_apiserver import FakeApiServer, JobProgram

FAKE_DIGEST_IMAGE = "127.0.0.1:5000/jobs@sha256:" + "c" * 64

# The (verb, apiGroup, resource) rules the executor needs; the chart's Role must grant them.
EXPECTED_RULES = {
    ("create", "kubeflow.org", "pytorchjobs"),
    ("get", "kubeflow.org", "pytorchjobs"),
    ("list", "kubeflow.org", "pytorchjobs"),
    ("delete", "kubeflow.org", "pytorchjobs"),
    ("list", "", "pods"),
    ("get", "", "pods/log"),
    ("list", "", "events"),
}


@dataclasses.dataclass
class FakeBundle:
    """Stands in for nemo_run_k8s.bundle.files.Bundle: what the executor reads of a bundle."""

    sha256: str
    manifest: dict[str, Any]
    path: Path


def fake_bundle(path: Path, sha256: str = "ab" * 32) -> FakeBundle:
    manifest = {
        "sha256": sha256,
        "task_kind": "config",
        "target": "train.main",
        "flattened_config": "model.lr = 0.1\nmodel.layers = 4",
    }
    return FakeBundle(sha256=sha256, manifest=manifest, path=path)


class FakeImageExecutor(KubernetesExecutor):
    """The executor with the image build and push replaced by a fixed digest."""

    def _resolve_image(self, bundle: Any, prebuilt: str | None = None) -> str:
        return FAKE_DIGEST_IMAGE


def outcome_line(outcome: tuple[str, Any]) -> str:
    """The last log line the entrypoint prints on Kubernetes."""
    return "NEMO_RUN_K8S_OUTCOME " + base64.b64encode(cloudpickle.dumps(outcome)).decode()


@contextlib.contextmanager
def fast_polling(interval: float = 0.02, cancel_timeout: float = 10.0) -> Iterator[None]:
    saved = KubernetesExecutor.poll_interval, KubernetesExecutor.cancel_timeout
    KubernetesExecutor.poll_interval, KubernetesExecutor.cancel_timeout = interval, cancel_timeout
    try:
        yield
    finally:
        KubernetesExecutor.poll_interval, KubernetesExecutor.cancel_timeout = saved


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def run_full_lifecycle(server: FakeApiServer) -> None:
    """Preflight, submit, state (with pod and event lookups), logs, outcome, list, cancel."""
    with tempfile.TemporaryDirectory() as tmp, fast_polling():
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        server.program = JobProgram(
            pods_after=0.5,
            running_after=0.7,
            finish_after=1.1,
            log_lines=["loading", "training", "done"],
            outcome_line=outcome_line(("success", 42)),
            warning_events=[("FailedCreatePod", "waiting for the scheduler")],
        )
        executor = FakeImageExecutor(
            image_repo="127.0.0.1:5000/jobs",
            num_nodes=2,
            namespace="team-a",
            kubeconfig=str(kubeconfig),
            kube_context="fake",
        )
        executor.check_backend()
        job = JobIdentity(job_id="lc1", name="lifecycle", job_dir=Path(tmp), experiment="rbac")
        bundle = fake_bundle(Path(tmp))
        handle = executor.launch(executor.plan(bundle, job), bundle, job)

        first = KubernetesExecutor.status(handle)  # no pods yet: pods, then events
        _check(first.state == JobState.PENDING, f"fresh job should be PENDING, got {first}")
        _check("FailedCreatePod" in first.reason, f"event reason missing: {first.reason!r}")

        lines = list(KubernetesExecutor.logs(handle, follow=True))  # every replica, merged
        master = [line for line in lines if line.startswith("[master0 rank0] ")]
        _check(len(master) == 3 and "[worker0 rank1] worker 0: done" in lines, f"logs: {lines}")
        worker = list(KubernetesExecutor.logs(handle, replica="worker", index=0))
        _check(worker[:1] == ["[worker0 rank1] worker 0: loading"], f"worker log: {worker}")
        description = KubernetesExecutor.describe(handle)
        _check([r.label for r in description.replicas] == ["master0", "worker0"], "describe")
        _check(KubernetesExecutor.state(handle) == JobState.SUCCEEDED, "job should succeed")
        outcome = KubernetesExecutor.outcome(handle)
        _check(outcome == ("success", 42), f"outcome: {outcome}")

        listed = KubernetesExecutor.list_jobs(
            "team-a", experiment="rbac", kubeconfig=str(kubeconfig), kube_context="fake"
        )
        _check([j.handle["name"] for j in listed] == [handle["name"]], f"listed: {listed}")

        KubernetesExecutor.cancel(handle)
        _check(server.job("team-a", handle["name"]) is None, "job still exists after cancel")
        pods = server._pods("team-a", f"training.kubeflow.org/job-name={handle['name']}")
        _check(not pods, "pods remain after cancel")
