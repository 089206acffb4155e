"""The real ``kubernetes`` client against the fake API server, through generated kubeconfigs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.errors import BackendError, InvalidOptionError, SubmissionError
from nemo_run_k8s.executors.kubernetes import client as k8s_client
from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
from nemo_run_k8s.spec import JobIdentity, JobState
from tests.conftest import REPO_ROOT as REPO
from tests.k8s.fake_apiserver import FakeApiServer, JobProgram
from tests.k8s.lifecycle import (
    EXPECTED_RULES,
    FAKE_DIGEST_IMAGE,
    FakeImageExecutor,
    fake_bundle,
    outcome_line,
    run_full_lifecycle,
)


def submit(
    kubeconfig: Path,
    tmp_path: Path,
    job_id: str = "j1",
    context: str | None = None,
    experiment: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    executor = FakeImageExecutor(
        image_repo="127.0.0.1:5000/jobs",
        kubeconfig=str(kubeconfig),
        kube_context=context,
        **options,
    )
    job = JobIdentity(job_id=job_id, name="train", job_dir=tmp_path, experiment=experiment)
    bundle = fake_bundle(tmp_path)
    return executor.launch(executor.plan(bundle, job), bundle, job)


def wait_for(handle: dict[str, Any], predicate: Any, timeout: float = 10.0) -> list[JobState]:
    seen: list[JobState] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = KubernetesExecutor.state(handle)
        if not seen or seen[-1] != state:
            seen.append(state)
        if predicate(state):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"timed out; states seen: {seen}")


def test_full_lifecycle_uses_exactly_the_expected_rbac_rules(server: FakeApiServer) -> None:
    run_full_lifecycle(server)
    assert server.rbac_calls() == EXPECTED_RULES
    assert {r.authorization for r in server.requests} == {"Bearer fake-token"}  # kubeconfig's user


def test_create_get_conditions_logs_delete(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.program = JobProgram(
        running_after=0.3, finish_after=0.8, log_lines=["a", "b", "c"], outcome_line=None
    )
    handle = submit(kubeconfig, tmp_path, num_nodes=3)
    sent = server.created_bodies[0]
    images = {
        c["image"]
        for r in sent["spec"]["pytorchReplicaSpecs"].values()
        for c in r["template"]["spec"]["containers"]
    }
    assert images == {FAKE_DIGEST_IMAGE}  # the pushed digest everywhere, not the placeholder
    assert sent["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    states = wait_for(handle, lambda s: s.is_terminal)
    assert states[-1] == JobState.SUCCEEDED
    assert JobState.RUNNING in states or states[0] == JobState.PENDING
    assert list(KubernetesExecutor.logs(handle, replica="master")) == [
        "[master0 rank0] a",
        "[master0 rank0] b",
        "[master0 rank0] c",
    ]
    assert list(KubernetesExecutor.logs(handle, replica="worker", index=1)) == [
        "[worker1 rank2] worker 1: a",
        "[worker1 rank2] worker 1: b",
        "[worker1 rank2] worker 1: c",
    ]
    everyone = list(KubernetesExecutor.logs(handle))  # one replica after the other
    assert everyone[:3] == ["[master0 rank0] a", "[master0 rank0] b", "[master0 rank0] c"]
    assert everyone[-1] == "[worker1 rank2] worker 1: c" and len(everyone) == 9
    assert KubernetesExecutor.outcome(handle) is None  # no outcome line printed
    start = time.monotonic()
    KubernetesExecutor.cancel(handle)
    assert time.monotonic() - start >= server.program.pod_linger * 0.9  # waited for the pods
    assert server.job("default", handle["name"]) is None
    assert KubernetesExecutor.state(handle) == JobState.CANCELLED
    KubernetesExecutor.cancel(handle)  # cancelling twice is fine


def test_states_over_time_and_follow_streams_as_lines_appear(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    lines = [f"line {i}" for i in range(10)]
    server.program = JobProgram(
        pods_after=0.2,
        running_after=0.5,
        finish_after=1.5,
        log_lines=lines,
        outcome_line=outcome_line(("success", {"loss": 0.5})),
    )
    handle = submit(kubeconfig, tmp_path)
    assert KubernetesExecutor.state(handle) == JobState.PENDING
    arrivals = []
    for line in KubernetesExecutor.logs(handle, follow=True):  # waits for the pod to start
        arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals] == [f"[master0 rank0] {x}" for x in lines]  # no outcome
    assert arrivals[9][0] - arrivals[0][0] > 0.5  # streamed over time, not read at the end
    assert KubernetesExecutor.state(handle) == JobState.SUCCEEDED
    assert KubernetesExecutor.outcome(handle) == ("success", {"loss": 0.5})


def test_image_pull_backoff_fails_fast_with_the_reason(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.program = JobProgram(problem="ImagePullBackOff")
    handle = submit(kubeconfig, tmp_path)
    wait_for(handle, lambda s: s == JobState.FAILED, timeout=5)
    reason = KubernetesExecutor.reason(handle)
    assert "ImagePullBackOff" in reason and FAKE_DIGEST_IMAGE in reason
    lines = list(KubernetesExecutor.logs(handle, follow=True))  # returns instead of hanging
    assert len(lines) == 1 and "never started" in lines[0] and "ImagePullBackOff" in lines[0]


def test_unschedulable_gpus_are_reported_then_fail_after_the_timeout(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.program = JobProgram(problem="Unschedulable", unschedulable_for=30)
    patient = submit(kubeconfig, tmp_path, job_id="p", gpus_per_node=8, unschedulable_timeout=600)
    status = KubernetesExecutor.status(patient)
    assert status.state == JobState.PENDING
    assert "Insufficient nvidia.com/gpu" in status.reason
    impatient = submit(kubeconfig, tmp_path, job_id="i", gpus_per_node=8, unschedulable_timeout=10)
    status = KubernetesExecutor.status(impatient)
    assert status.state == JobState.FAILED
    assert re.search(r"Unschedulable for 3[0-2]s", status.reason)  # timestamps have 1 s steps


def test_oom_killed_master_surfaces_reason_and_termination_message(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.program = JobProgram(
        running_after=0.1, finish_after=0.3, problem="OOMKilled", termination_message="rank 0 OOM"
    )
    handle = submit(kubeconfig, tmp_path)
    wait_for(handle, lambda s: s.is_terminal)
    status = KubernetesExecutor.status(handle)
    assert status.state == JobState.FAILED
    assert "OOMKilled with exit code 137, killed by SIGKILL (rank 0 OOM)" in status.reason
    # the operator's condition message too
    assert "is failed because 1 Master replica(s) failed" in status.reason


def test_pods_deleted_past_the_backoff_limit_leave_the_reason_in_events(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    # The real operator deletes every pod of a job past its backoffLimit (cleanPodPolicy
    # notwithstanding); its Warning events on the job are what is left to say why.
    event = "Error pod j1-master-0 container pytorch exitCode: 137 terminated message: "
    server.program = JobProgram(
        running_after=0.1,
        finish_after=0.3,
        problem="OOMKilled",
        past_backoff_limit=True,
        warning_events=[("OOMKilled", event)],
    )
    handle = submit(kubeconfig, tmp_path)
    wait_for(handle, lambda s: s.is_terminal)
    status = KubernetesExecutor.status(handle)
    assert status.state == JobState.FAILED
    assert "reached the specified backoff limit" in status.reason
    assert f"event OOMKilled: {event}" in status.reason


def test_logs_reject_replicas_that_do_not_exist(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    handle = submit(kubeconfig, tmp_path, num_nodes=2)
    with pytest.raises(InvalidOptionError, match="1 master and 1 worker"):
        list(KubernetesExecutor.logs(handle, replica="worker", index=1))
    with pytest.raises(InvalidOptionError, match="'master' or 'worker'"):
        list(KubernetesExecutor.logs(handle, replica="chief"))


def test_list_finds_jobs_by_experiment_label(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    a = submit(kubeconfig, tmp_path, job_id="a1")
    executor = FakeImageExecutor(image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig))
    for job_id, experiment in (("b1", "sweep"), ("b2", "sweep"), ("c1", "other")):
        job = JobIdentity(job_id=job_id, name="train", job_dir=tmp_path, experiment=experiment)
        executor.launch(executor.plan(fake_bundle(tmp_path), job), fake_bundle(tmp_path), job)
    sweep = KubernetesExecutor.list_jobs(experiment="sweep", kubeconfig=str(kubeconfig))
    assert sorted(j.handle["job_id"] for j in sweep) == ["b1", "b2"]
    everything = KubernetesExecutor.list_jobs(kubeconfig=str(kubeconfig))
    assert len(everything) == 4 and a["name"] in {j.handle["name"] for j in everything}
    listed = next(j.handle for j in sweep if j.handle["job_id"] == "b1")
    assert KubernetesExecutor.state(listed) in (JobState.PENDING, JobState.RUNNING)


def test_reattach_from_a_fresh_process(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.program = JobProgram(
        running_after=0.1, finish_after=0.3, outcome_line=outcome_line(("success", 7))
    )
    handle = submit(kubeconfig, tmp_path)
    wait_for(handle, lambda s: s.is_terminal)
    code = (
        "import json, sys\n"
        "from nemo_run_k8s.executors.base import backend_class\n"
        "handle = json.loads(sys.argv[1])\n"
        "cls = backend_class('k8s')\n"
        "print(cls.state(handle).value, cls.outcome(handle))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KUBECONFIG", None)  # the handle alone says where the job is
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(handle)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "SUCCEEDED ('success', 7)"


def test_403_names_the_verb_resource_and_the_chart(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.fail("create", "pytorchjobs", 403)
    with pytest.raises(SubmissionError) as info:
        submit(kubeconfig, tmp_path)
    message = str(info.value)
    assert "cannot 'create' pytorchjobs.kubeflow.org in namespace 'default'" in message
    assert "helm/nemo-run-k8s" in message


def test_403_on_pod_logs_names_the_subresource(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.program = JobProgram(running_after=0.0, finish_after=0.1)
    handle = submit(kubeconfig, tmp_path)
    wait_for(handle, lambda s: s.is_terminal)
    server.fail("get", "pods/log", 403)
    with pytest.raises(BackendError, match="cannot 'get' pods/log in namespace 'default'"):
        list(KubernetesExecutor.logs(handle))


def test_404_for_the_resource_type_says_the_operator_is_missing(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    server.crd_installed = False
    with pytest.raises(BackendError, match="training operator is not installed"):
        submit(kubeconfig, tmp_path)
    executor = KubernetesExecutor(image_repo="r.example.com/j", kubeconfig=str(kubeconfig))
    with pytest.raises(BackendError, match="kubectl apply --server-side"):
        executor.check_backend()
    # run.submit says the job was not started: its refusals are SubmissionErrors.
    with pytest.raises(SubmissionError, match="training operator is not installed"):
        run.submit(run.Partial(print, "x"), executor)


def test_409_is_a_name_clash(server: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    handle = submit(kubeconfig, tmp_path, job_id="same")
    with pytest.raises(SubmissionError) as info:
        submit(kubeconfig, tmp_path, job_id="same")
    assert f"name clash: a PyTorchJob named {handle['name']!r} already exists" in str(info.value)
    assert "kubectl delete pytorchjob" in str(info.value)


def test_422_lists_the_servers_field_messages(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    def validator(body: dict[str, Any]) -> list[dict[str, str]]:
        return [
            {
                "reason": "FieldValueInvalid",
                "field": "spec.runPolicy.backoffLimit",
                "message": "Invalid value: 3: must be <= 2 in this namespace",
            }
        ]

    server.validator = validator
    with pytest.raises(SubmissionError) as info:
        submit(kubeconfig, tmp_path)
    assert "rejected PyTorchJob 'j1' as invalid" in str(info.value)
    assert "spec.runPolicy.backoffLimit: Invalid value: 3: must be <= 2" in str(info.value)


def test_unreachable_cluster_names_context_and_server(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    with pytest.raises(SubmissionError) as info:
        submit(kubeconfig, tmp_path, context="unreachable")
    message = str(info.value)
    assert "cannot reach the Kubernetes API server http://127.0.0.1:" in message
    assert f"context 'unreachable' of kubeconfig {kubeconfig}" in message
    assert server.requests == []


def test_unknown_context_is_reported(kubeconfig: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="context 'nope'"):
        submit(kubeconfig, tmp_path, context="nope")


def test_violations_are_caught_before_any_request(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    class Unpinned(KubernetesExecutor):
        def _resolve_image(self, bundle: Any, prebuilt: str | None = None) -> str:
            return "127.0.0.1:5000/jobs:latest"

    executor = Unpinned(image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig))
    job = JobIdentity(job_id="v1", name="train", job_dir=tmp_path)
    bundle = fake_bundle(tmp_path)
    with pytest.raises(InvalidOptionError, match="not pinned by digest"):
        executor.launch(executor.plan(bundle, job), bundle, job)
    good = FakeImageExecutor(image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig))
    plan = good.plan(bundle, job)
    plan.documents[0]["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    with pytest.raises(InvalidOptionError, match=r"Master\.replicas must be 1"):
        good.launch(plan, bundle, job)
    assert server.requests == []


def test_a_sweep_of_100_submissions_shares_one_connection(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    executor = FakeImageExecutor(image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig))
    bundle = fake_bundle(tmp_path)
    executor.check_backend()  # first use: client import and connection
    for i in range(100):  # how long this takes is bench/run_all.py's sweep row
        job = JobIdentity(job_id=f"s{i}", name="sweep", job_dir=tmp_path, experiment="bench")
        executor.launch(executor.plan(bundle, job), bundle, job)
    assert len(server.created_bodies) == 100
    assert len({id(c.api) for c in k8s_client._CONNS.values()}) == len(k8s_client._CONNS)


def test_images_are_built_and_pushed_once_per_image(
    server: FakeApiServer, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from nemo_run_k8s.executors.kubernetes import executor as k8s_executor
    from nemo_run_k8s.image import builder as job_image
    from nemo_run_k8s.image import push as job_push

    calls: list[tuple[str, ...]] = []

    def build_image(bundle: Any, executor: Any) -> Any:
        calls.append(("build", bundle.sha256, executor.base_image))
        return SimpleNamespace(ref=f"nemo-run-k8s/job:{bundle.sha256[:12]}")

    def push_image(image: str, repo: str) -> str:
        calls.append(("push", image, repo))
        return f"{repo}@sha256:" + "d" * 64

    monkeypatch.setattr(job_image, "build_image", build_image)
    monkeypatch.setattr(job_push, "push_image", push_image)
    monkeypatch.setattr(k8s_executor, "_PUSHED", {})
    executor = KubernetesExecutor(
        image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig), base_image="base:1"
    )
    bundle = fake_bundle(tmp_path)
    for i in range(3):  # an experiment: one shared, prebuilt image
        job = JobIdentity(
            job_id=f"e{i}", name="t", job_dir=tmp_path, image="nemo-run-k8s/job:shared"
        )
        executor.launch(executor.plan(bundle, job), bundle, job)
    job = JobIdentity(job_id="solo", name="t", job_dir=tmp_path)
    handle = executor.launch(executor.plan(bundle, job), bundle, job)
    assert calls == [
        ("push", "nemo-run-k8s/job:shared", "127.0.0.1:5000/jobs"),
        ("build", bundle.sha256, "base:1"),
        ("push", "nemo-run-k8s/job:" + bundle.sha256[:12], "127.0.0.1:5000/jobs"),
    ]
    assert handle["image"] == "127.0.0.1:5000/jobs@sha256:" + "d" * 64
