"""The chart's Role, enforced by a real authorizer: enough to work with, and nothing more."""

from __future__ import annotations

from typing import Any

import pytest

import nemo_run_k8s as run
from tests.cluster import tasks
from tests.cluster.conftest import SUBMITTER, Cluster
from tests.cluster.helpers import bare, wait_for_line

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def test_chart_user_submits_follows_lists_and_cancels(
    cluster: Cluster, namespace: str, submitter: str, executor: Any
) -> None:
    job = run.submit(run.Partial(tasks.ticks, seconds=600), executor(), name="rbac")
    name = job.record.handle["name"]
    wait_for_line(job, "tick 2")
    followed = []
    for line in job.logs(follow=True):  # pods/log with follow, as the chart's user
        followed.append(line)
        if len(followed) >= 3:
            break
    assert [bare(line) for line in followed[:3]] == ["tick 0", "tick 1", "tick 2"]
    listed = run.KubernetesExecutor.list_jobs(namespace, kubeconfig=submitter)
    mine = [j for j in listed if j.handle["name"] == name]  # other tests share the namespace
    assert len(mine) == 1 and mine[0].state is run.JobState.RUNNING
    assert mine[0].handle["job_id"] == job.id
    job.cancel()
    assert job.state() is run.JobState.CANCELLED
    assert cluster.pytorchjob(namespace, name) is None
    assert cluster.pods(namespace, name) == []


def test_chart_role_grants_nothing_else(cluster: Cluster, namespace: str) -> None:
    def can(verb: str, resource: str) -> bool:
        kind, _, sub = resource.partition("/")
        args = ["auth", "can-i", verb, kind, "-n", namespace, "--as", SUBMITTER]
        out = cluster.kubectl(*args, *(["--subresource", sub] if sub else []), check=False)
        return out.strip().splitlines()[0] == "yes"

    for verb, resource in [
        ("create", "pytorchjobs.kubeflow.org"),
        ("delete", "pytorchjobs.kubeflow.org"),
        ("list", "pods"),
        ("get", "pods/log"),
        ("list", "events"),
    ]:
        assert can(verb, resource), f"the chart's Role should allow {verb} {resource}"
    for verb, resource in [
        ("get", "secrets"),
        ("create", "pods"),
        ("delete", "pods"),
        ("update", "pytorchjobs.kubeflow.org"),
        ("create", "rolebindings"),
    ]:
        assert not can(verb, resource), f"the chart's Role must not allow {verb} {resource}"
    assert not cluster.kubectl(
        "auth", "can-i", "list", "pytorchjobs.kubeflow.org", "-n", "default", "--as", SUBMITTER,
        check=False,
    ).startswith("yes")  # fmt: skip


def test_unbound_user_gets_a_clear_403(
    cluster: Cluster, namespace: str, stranger: str, executor: Any, home: Any
) -> None:
    ex = executor(kubeconfig=stranger)
    with pytest.raises(run.SubmissionError) as caught:
        run.submit(run.Partial(tasks.square, x=3), ex, name="stranger")
    message = str(caught.value)
    assert "permission denied" in message
    assert f"cannot 'list' pytorchjobs.kubeflow.org in namespace '{namespace}'" in message
    assert "nrk-stranger" in message  # the API server's own words name the user
    assert "helm install" in message  # and we say what to do
    jobs = cluster.custom.list_namespaced_custom_object(
        "kubeflow.org", "v1", namespace, "pytorchjobs"
    )
    assert [j for j in jobs["items"] if j["metadata"]["name"].startswith("stranger")] == []
