"""Every replica of a Kubernetes job: merged logs, late and restarted pods, status per pod.

Against the fake API server; the CLI tests run ``nemo-run-k8s`` as a subprocess
on a job recorded the way ``submit`` records it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.api import launch_prepared, prepare
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.executors.kubernetes import replicas
from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
from nemo_run_k8s.records import Records
from nemo_run_k8s.spec import JobState
from tests.cli.factories import experiment
from tests.k8s.fake_apiserver import FakeApiServer, JobProgram
from tests.k8s.fake_cluster import UNSCHEDULABLE_MESSAGE, pull_backoff_message
from tests.k8s.lifecycle import FAKE_DIGEST_IMAGE, FakeImageExecutor

REPO = Path(__file__).resolve().parents[2]


def submit_job(kubeconfig: Path, **options: Any) -> run.Job:
    """A job submitted as ``run.submit`` does it (recorded), with the image build faked."""
    executor = FakeImageExecutor(
        image_repo="127.0.0.1:5000/jobs", kubeconfig=str(kubeconfig), **options
    )
    records = Records()
    job, bundle = prepare(experiment(), executor, "train", None, records.job_dir)
    return launch_prepared(executor, job, bundle, executor.plan(bundle, job), records)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "nemo_run_k8s.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_follow_merges_every_replica_and_picks_up_a_late_pod(
    server: FakeApiServer, kubeconfig: Path
) -> None:
    server.program = JobProgram(
        pods_after=0.1,
        running_after=0.3,
        finish_after=1.5,
        log_lines=["a", "b", "c"],
        late={"worker1": 0.6},  # its pod appears after the others already stream
    )
    job = submit_job(kubeconfig, num_nodes=3)
    lines = list(job.logs(follow=True))
    assert [x for x in lines if x.startswith("[master0 rank0] ")] == [
        "[master0 rank0] a",
        "[master0 rank0] b",
        "[master0 rank0] c",
    ]
    for replica, rank in (("worker0", 1), ("worker1", 2)):
        index = replica[-1]
        assert [x for x in lines if x.startswith(f"[{replica} ")] == [
            f"[{replica} rank{rank}] worker {index}: {x}" for x in "abc"
        ]
    first_worker1 = lines.index("[worker1 rank2] worker 1: a")
    assert first_worker1 > lines.index("[master0 rank0] a")  # merged as they came
    assert job.state() is JobState.SUCCEEDED


def test_replica_and_index_pick_one_replica_on_every_path(
    server: FakeApiServer, kubeconfig: Path
) -> None:
    server.program = JobProgram(running_after=0.0, finish_after=0.3, log_lines=["x"])
    job = submit_job(kubeconfig, num_nodes=3)
    job.wait()
    assert list(job.logs(replica="worker", index=1)) == ["[worker1 rank2] worker 1: x"]
    assert sorted(job.logs(follow=True, replica="worker")) == [  # merged: any order
        "[worker0 rank1] worker 0: x",
        "[worker1 rank2] worker 1: x",
    ]
    assert list(job.logs(replica="master")) == ["[master0 rank0] x"]
    with pytest.raises(InvalidOptionError, match="index= needs replica="):
        job.logs(index=0)
    proc = cli("logs", job.id, "--replica", "worker", "--index", "0")
    assert (proc.returncode, proc.stdout) == (0, "[worker0 rank1] worker 0: x\n"), proc.stderr
    proc = cli("logs", job.id, "--replica", "worker", "--index", "5")
    assert proc.returncode == 2 and "1 master and 2 worker(s)" in proc.stderr


def test_cli_logs_follow_carries_every_replica(server: FakeApiServer, kubeconfig: Path) -> None:
    server.program = JobProgram(
        pods_after=0.2, running_after=0.5, finish_after=1.5, log_lines=["one", "two"]
    )
    job = submit_job(kubeconfig, num_nodes=2)
    proc = cli("logs", "-f", job.id)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == [
        "[master0 rank0] one",
        "[master0 rank0] two",
        "[worker0 rank1] worker 0: one",
        "[worker0 rank1] worker 0: two",
    ]


def test_a_restarted_pod_keeps_its_previous_log_reachable(
    server: FakeApiServer, kubeconfig: Path
) -> None:
    server.program = JobProgram(
        running_after=0.0,
        finish_after=0.3,
        log_lines=["retry ok"],
        restarted={"worker0": ["CUDA error: an illegal memory access"]},
    )
    job = submit_job(kubeconfig, num_nodes=2)
    job.wait()
    assert list(job.logs(replica="worker")) == [
        "[worker0 rank1] --- previous container (the pod restarted 1 time(s)) ---",
        "[worker0 rank1] CUDA error: an illegal memory access",
        "[worker0 rank1] --- current container ---",
        "[worker0 rank1] worker 0: retry ok",
    ]
    worker = job.describe().replicas[1]
    assert (worker.label, worker.restarts) == ("worker0", 1)


def test_several_processes_per_pod_keep_torchruns_rank() -> None:
    prefix = replicas.prefixer("worker", 1, nproc=8)
    assert prefix("[rank9] loss 0.5") == "[worker1 rank9] loss 0.5"
    assert prefix("torchrun: starting") == "[worker1] torchrun: starting"
    assert replicas.prefixer("master", 0, nproc=1)("hi") == "[master0 rank0] hi"
    assert replicas.strip_rank("[rank0] NEMO_RUN_K8S_OUTCOME x") == "NEMO_RUN_K8S_OUTCOME x"


def test_status_shows_each_pod_and_the_latest_warnings(
    server: FakeApiServer, kubeconfig: Path
) -> None:
    server.program = JobProgram(problem="ImagePullBackOff")
    job = submit_job(kubeconfig, num_nodes=2)
    described = job.describe()
    assert described.state is JobState.FAILED
    assert [(r.label, r.phase) for r in described.replicas] == [
        ("master0", "Pending"),
        ("worker0", "Pending"),
    ]
    assert described.replicas[0].detail == (
        f"ImagePullBackOff: {pull_backoff_message(FAKE_DIGEST_IMAGE)}"
    )
    proc = cli("status", job.id)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    assert table[0].startswith(f"{job.id}  train  k8s  FAILED")
    assert table[1].split() == ["REPLICA", "POD", "PHASE", "RESTARTS", "DETAIL"]
    assert table[2].split()[:4] == [
        "master0",
        f"{job.record.handle['name']}-master-0",
        "Pending",
        "0",
    ]
    assert "ImagePullBackOff: Back-off pulling image" in table[2]
    data = json.loads(cli("status", job.id, "-o", "json").stdout)
    assert [r["phase"] for r in data["replicas"]] == ["Pending", "Pending"]
    assert data["replicas"][1]["detail"].startswith("ImagePullBackOff")


def test_warning_events_and_scheduler_reasons_reach_status(
    server: FakeApiServer, kubeconfig: Path
) -> None:
    server.program = JobProgram(
        problem="Unschedulable",
        unschedulable_for=5,
        pod_events=[
            (
                "Warning",
                "FailedScheduling",
                "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            )
        ],
    )
    job = submit_job(kubeconfig, num_nodes=1, gpus_per_node=1, unschedulable_timeout=600)
    described = job.describe()
    assert described.state is JobState.PENDING
    master = described.replicas[0]
    assert master.detail == f"unschedulable: {UNSCHEDULABLE_MESSAGE}"
    assert described.warnings[-1].endswith(
        "-master-0: FailedScheduling: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    )
    proc = cli("status", job.id)
    assert "warning: " in proc.stdout and "FailedScheduling" in proc.stdout


def test_a_queued_job_says_which_queue_holds_it(server: FakeApiServer, kubeconfig: Path) -> None:
    server.program = JobProgram(pods_after=60, finish_after=None)
    job = submit_job(kubeconfig, num_nodes=2, queue="gpu-queue")
    described = job.describe()
    assert [(r.phase, r.detail) for r in described.replicas] == [
        ("not created", "queued in gpu-queue"),
        ("not created", "queued in gpu-queue"),
    ]
    assert KubernetesExecutor.state(job.record.handle) is JobState.PENDING
