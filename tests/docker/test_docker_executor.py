"""DockerExecutor against the real engine: multi-node torch, failure, cancel, reattach, GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.errors import InvalidOptionError, JobFailed
from nemo_run_k8s.executors import host
from nemo_run_k8s.executors.docker import executor as docker_executor
from nemo_run_k8s.executors.docker import spec as docker_spec
from nemo_run_k8s.labels import JOB_ID_LABEL
from nemo_run_k8s.records import Records
from nemo_run_k8s.spec import JobState
from tests.conftest import REPO_ROOT as REPO
from tests.docker.engine import by_job_name, leftovers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


# ---------------------------------------------------------------------- tasks (run in the job)


def allreduce_rank() -> int:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank())])
    dist.all_reduce(total)
    print(f"all_reduce sum={int(total.item())} world={dist.get_world_size()}", flush=True)
    dist.destroy_process_group()
    return int(total.item())


def show_env(steps: int = 3) -> dict[str, str]:
    keys = ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_NNODES", "PET_NODE_RANK"]
    keys.append("PET_NPROC_PER_NODE")
    for step in range(steps):
        print(f"step {step}", flush=True)
        time.sleep(0.2)
    env = {key: os.environ[key] for key in keys}
    print("env " + " ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    return env


def where_am_i() -> dict[str, str]:
    """This node's hostname, and the address every node's name resolves to here."""
    import socket

    nodes = int(os.environ["PET_NNODES"])
    master = os.environ["MASTER_ADDR"]
    names = [master.rsplit("-", 1)[0] + f"-{n}" for n in range(nodes)]
    seen = {n: socket.gethostbyname(n) for n in names}
    return {"hostname": socket.gethostname(), "MASTER_PORT": os.environ["MASTER_PORT"], **seen}


def node_one_fails() -> None:
    if os.environ["RANK"] == "1":
        time.sleep(1)
        raise RuntimeError("node 1 breaks on purpose")
    print("node 0 waits", flush=True)
    time.sleep(300)


def sleep_long() -> None:
    print(f"started on node {os.environ['PET_NODE_RANK']}", flush=True)
    time.sleep(300)


def wait_for_gate(gate_dir: str) -> str:
    print(f"waiting on node {os.environ['PET_NODE_RANK']}", flush=True)
    while not os.path.exists(os.path.join(gate_dir, "open")):
        time.sleep(0.05)
    return f"through on node {os.environ['PET_NODE_RANK']}"


# ---------------------------------------------------------------------- helpers


def wait_for_lines(job: Any, needles: list[str], timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = list(job.logs())
        if all(any(n in line for line in lines) for n in needles):
            return lines
        assert not job.done(), "job ended early:\n" + "\n".join(lines)
        time.sleep(0.2)
    raise AssertionError(f"no {needles} in the logs after {timeout} s:\n" + "\n".join(lines))


def in_fresh_process(code: str, timeout: float = 60) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("network", ["host", "job"])
def test_two_nodes_two_processes_all_reduce(
    network: str, cpu_image: str, docker_client: Any
) -> None:
    executor = run.DockerExecutor(
        num_nodes=2, nproc_per_node=2, base_image=cpu_image, shm_size="256m", network=network
    )
    job = run.submit(run.Partial(allreduce_rank), executor, name="allreduce")
    assert job.wait(timeout=240) is JobState.SUCCEEDED, job.log_tail()
    assert job.result() == 6  # 0 + 1 + 2 + 3, from rank 0 through the host's output dir
    lines = list(job.logs())
    for node, rank in [(0, 0), (0, 1), (1, 2), (1, 3)]:
        assert f"[node{node} rank{rank}] all_reduce sum=6 world=4" in lines, "\n".join(lines)
    assert leftovers(docker_client, job.id) == []


def test_env_contract_and_followed_logs(base_image: str, docker_client: Any) -> None:
    executor = run.DockerExecutor(num_nodes=2, base_image=base_image, master_port=29411)
    job = run.submit(run.Partial(show_env, steps=3), executor, name="env-contract")
    followed = list(job.logs(follow=True))  # streams every node until the job ends
    assert job.state() is JobState.SUCCEEDED
    worker = list(job.logs(replica="worker", index=0))  # node 1 is worker 0, as on Kubernetes
    assert worker and all(line.startswith("[node1 rank1] ") for line in worker), worker
    assert all(line.startswith("[node0 rank0] ") for line in job.logs(replica="master"))
    master = docker_spec.container_name(job.id, 0)
    for node in (0, 1):
        assert [line for line in followed if f"[node{node} rank{node}] step" in line] == [
            f"[node{node} rank{node}] step {i}" for i in range(3)
        ]
        assert (
            f"[node{node} rank{node}] env MASTER_ADDR={master} MASTER_PORT=29411 WORLD_SIZE=2 "
            f"RANK={node} PET_NNODES=2 PET_NODE_RANK={node} PET_NPROC_PER_NODE=1"
        ) in followed
    assert job.result()["RANK"] == "0"
    assert leftovers(docker_client, job.id) == []


def test_on_the_hosts_network_nodes_have_their_names_and_two_jobs_at_once_get_own_ports(
    base_image: str, docker_client: Any
) -> None:
    executor = run.DockerExecutor(num_nodes=3, base_image=base_image)  # network="host"
    jobs = [run.submit(run.Partial(where_am_i), executor, name=f"host-net-{i}") for i in (0, 1)]
    ports = []
    for job in jobs:
        assert job.wait(timeout=120) is JobState.SUCCEEDED, job.log_tail()
        names = [docker_spec.container_name(job.id, n) for n in range(3)]
        seen = job.result()
        ports.append(seen.pop("MASTER_PORT"))
        assert seen == {"hostname": names[0], **dict.fromkeys(names, "127.0.0.1")}
        assert json.loads(Path(job.record.job_dir, "docker.json").read_text())["network_id"] is None
        assert leftovers(docker_client, job.id, network_grace=0) == []  # no network was made
    assert ports[0] != ports[1] and all(20000 <= int(port) < 32768 for port in ports)


def test_final_state_leaves_no_container_and_the_network_goes_right_after(
    base_image: str, docker_client: Any
) -> None:
    job = run.run(
        run.Partial(show_env, steps=0),
        run.DockerExecutor(num_nodes=2, base_image=base_image, network="job"),
    )
    assert job.state() is JobState.SUCCEEDED
    assert [x for x in leftovers(docker_client, job.id, network_grace=0) if "container" in x] == []
    assert leftovers(docker_client, job.id) == []  # the supervisor removed the network
    job_dir = Path(job.record.job_dir)
    deadline = time.monotonic() + 10
    while host.alive(job.record.handle["supervisor"]):
        assert time.monotonic() < deadline, "the supervisor did not exit"
        time.sleep(0.05)
    assert (job_dir / "network-removed").exists()

    # A supervisor that died between the final state and the network's removal: the next
    # look at the job removes what it left.
    network = docker_client.api.create_network(
        docker_spec.network_name(job.id), labels={JOB_ID_LABEL: job.id}
    )
    spec = json.loads((job_dir / "docker.json").read_text())
    (job_dir / "docker.json").write_text(json.dumps({**spec, "network_id": network["Id"]}))
    (job_dir / "network-removed").unlink()
    assert run.Job.from_id(job.id).state() is JobState.SUCCEEDED
    assert leftovers(docker_client, job.id, network_grace=0) == []
    assert (job_dir / "network-removed").exists()


def test_failing_node_fails_the_job_and_stops_the_others(
    base_image: str, docker_client: Any
) -> None:
    executor = run.DockerExecutor(num_nodes=2, base_image=base_image)
    job = run.submit(run.Partial(node_one_fails), executor, name="node-fails")
    wait_for_lines(job, ["[node0 rank0] node 0 waits"])
    started = time.monotonic()
    assert job.wait(timeout=60) is JobState.FAILED
    assert time.monotonic() - started < 15  # node 1 fails after ~1 s; node 0 was sleeping 300 s
    lines = list(job.logs())
    assert "[node1 rank1] RuntimeError: node 1 breaks on purpose" in lines
    assert "[node0 rank0] nemo_run_k8s: stopped by SIGTERM" in lines  # node 0 was stopped
    error = job.exception()
    assert isinstance(error, JobFailed) and error.state is JobState.FAILED
    assert error.reason == "node 1 exited with code 1"  # the cause, not node 0's stop
    assert "node 1 breaks on purpose" in str(error)
    assert leftovers(docker_client, job.id) == []


def test_cancel_mid_run_and_reattach_from_another_process(
    base_image: str, docker_client: Any
) -> None:
    executor = run.DockerExecutor(num_nodes=2, base_image=base_image)
    job = run.submit(run.Partial(sleep_long), executor, name="cancel-me")
    wait_for_lines(job, ["started on node 0", "started on node 1"])
    probe = f"import nemo_run_k8s as run; print(run.Job.from_id({job.id!r}).state().value)"
    assert in_fresh_process(probe).strip() == "RUNNING"
    started = time.monotonic()
    job.cancel()
    assert time.monotonic() - started < 8  # the nodes took the SIGTERM (the grace is 10 s)
    assert job.state() is JobState.CANCELLED
    assert leftovers(docker_client, job.id) == []
    assert in_fresh_process(probe).strip() == "CANCELLED"


@pytest.mark.parametrize("then", ["finish", "cancel"])
def test_a_killed_supervisor_leaves_the_state_to_the_containers(
    base_image: str, docker_client: Any, tmp_path: Path, then: str
) -> None:
    """Issue 14, item 2: kill -9 of the supervisor; state, result and cancel follow the nodes."""
    gate = tmp_path / "gate"
    gate.mkdir()
    executor = run.DockerExecutor(num_nodes=2, base_image=base_image, volumes=[f"{gate}:/gate"])
    job = run.submit(run.Partial(wait_for_gate, "/gate"), executor, name="orphaned")
    wait_for_lines(job, ["waiting on node 0", "waiting on node 1"])
    supervisor = job.record.handle["supervisor"]["pid"]
    os.kill(supervisor, signal.SIGKILL)
    while host.alive(job.record.handle["supervisor"]):
        time.sleep(0.02)
    assert job.state() is JobState.RUNNING
    if then == "cancel":
        job.cancel()
        assert job.state() is JobState.CANCELLED
    else:
        (gate / "open").touch()
        assert job.wait() is JobState.SUCCEEDED
        assert job.result() == "through on node 0"
        assert "[node1 rank1] waiting on node 1" in list(job.logs())
    assert leftovers(docker_client, job.id) == []


def test_a_submitter_killed_during_the_image_build_leaves_nothing_and_a_failed_job(
    base_image: str, docker_client: Any, tmp_path: Path
) -> None:
    """Issue 14, item 3: kill -9 while the image builds (the network exists by then)."""
    marker = tmp_path / "building"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import nemo_run_k8s as run\n"
        "from nemo_run_k8s.image.builder import ImageBuilder\n"
        "def hang(self, bundles, spec, *a, **k):\n"
        f"    Path({str(marker)!r}).write_text(Path(bundles[0].path).parent.name)\n"
        "    while True: time.sleep(1)\n"
        "ImageBuilder.build = hang\n"
        f"ex = run.DockerExecutor(num_nodes=2, base_image={base_image!r}, network='job')\n"
        "run.submit(run.Partial(print, 'never'), ex, name='killed-submitter')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        while not (marker.exists() and (job_id := marker.read_text())):
            assert proc.poll() is None, "the submitter ended early"
            time.sleep(0.05)
        label = {"label": f"{JOB_ID_LABEL}={job_id}"}
        while not docker_client.api.networks(filters=label):
            time.sleep(0.05)  # created while the image builds
    finally:
        proc.kill()
        proc.wait()
    job = run.Job.from_id(job_id)
    assert job.wait() is JobState.FAILED
    assert "exited before the launch finished" in job.reason()
    while docker_client.api.networks(filters=label):
        time.sleep(0.05)  # the supervisor got no go: it removes what has the job's label
    assert leftovers(docker_client, job_id, network_grace=0) == []


def test_job_outlives_a_submitter_that_exits_at_once(base_image: str, docker_client: Any) -> None:
    code = (
        "import nemo_run_k8s as run\n"
        "from tests.docker.test_docker_executor import show_env\n"
        f"ex = run.DockerExecutor(num_nodes=2, base_image={base_image!r})\n"
        "print(run.submit(run.Partial(show_env, steps=5), ex, name='detached').id)\n"
    )
    job_id = in_fresh_process(code, timeout=120).strip().splitlines()[-1]
    job = run.Job.from_id(job_id)  # the submitter has exited; the job goes on
    assert job.wait(timeout=60) is JobState.SUCCEEDED
    assert job.result()["WORLD_SIZE"] == "2"
    lines = list(job.logs())
    assert "[node1 rank1] step 4" in lines and "[node0 rank0] step 4" in lines
    assert leftovers(docker_client, job_id) == []


def test_ctrl_c_in_run_cancels_the_job(base_image: str, docker_client: Any) -> None:
    code = (
        "import nemo_run_k8s as run\n"
        "from tests.docker.test_docker_executor import sleep_long\n"
        f"ex = run.DockerExecutor(num_nodes=2, base_image={base_image!r})\n"
        "run.run(run.Partial(sleep_long), ex, name='interrupted')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            jobs = Records().list()
            if jobs and jobs[0].name == "interrupted" and jobs[0].handle:
                job = run.Job(jobs[0])
                if job.state() is JobState.RUNNING:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the job never ran")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        interrupted = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        # Well under the 10 s stop grace: the nodes took the SIGTERM, even one still starting.
        assert time.monotonic() - interrupted < 8
    finally:
        proc.kill()
    assert b"KeyboardInterrupt" in stderr
    assert job.state() is JobState.CANCELLED
    assert leftovers(docker_client, job.id) == []


def test_ctrl_c_during_submit_leaves_nothing_and_a_failed_record(
    base_image: str, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(api: Any, ids: list[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(docker_executor, "_start_all", interrupted)
    executor = run.DockerExecutor(num_nodes=2, base_image=base_image)
    with pytest.raises(KeyboardInterrupt):
        run.submit(run.Partial(show_env), executor, name="ctrl-c-submit")
    record = Records().list()[0]
    assert record.name == "ctrl-c-submit"
    assert record.state == "FAILED" and record.message == "interrupted during submit"
    assert run.Job.from_id(record.id).state() is JobState.FAILED
    assert leftovers(docker_client, record.id) == []


def test_gpus_are_refused_clearly_before_anything_is_created(
    base_image: str, docker_client: Any
) -> None:
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this engine has an NVIDIA runtime")
    name = f"gpu-refused-{os.getpid()}"
    executor = run.DockerExecutor(num_nodes=2, gpus_per_node=1, base_image=base_image)
    with pytest.raises(InvalidOptionError, match="no NVIDIA runtime") as caught:
        run.submit(run.Partial(show_env), executor, name=name)
    assert "gpus_per_node=1" in str(caught.value) and "runc" in str(caught.value)
    assert by_job_name(docker_client, name) == []
    assert [r for r in Records().list() if r.name == name] == []


def test_unknown_base_image_is_refused_before_anything_is_created(
    docker_client: Any, made_images: Any
) -> None:
    name = f"no-image-{os.getpid()}"
    executor = run.DockerExecutor(base_image="nemo-run-k8s/no-such-base:never")
    with pytest.raises(run.ImageBuildError, match="is not present locally and cannot be pulled"):
        run.submit(run.Partial(show_env), executor, name=name)
    assert by_job_name(docker_client, name) == []


def test_an_experiment_shares_one_image_between_its_docker_jobs(
    base_image: str, docker_client: Any
) -> None:
    exp = run.Experiment("shared-image", run.DockerExecutor(base_image=base_image))
    exp.add(run.Partial(show_env, steps=1), name="first")
    exp.add(run.Partial(show_env, steps=2), name="second")
    jobs = exp.launch()
    assert set(exp.wait(timeout=120).values()) == {JobState.SUCCEEDED}
    images = {job.record.handle["image"] for job in jobs.values()}
    assert len(images) == 1  # one image holds both bundles
    bundles = docker_client.images.get(images.pop()).labels["nemo-run-k8s.io/bundles"]
    assert len(bundles.split(",")) == 2
    assert [line for line in exp.logs("second") if "step" in line] == [
        "[node0 rank0] step 0",
        "[node0 rank0] step 1",
    ]
    for job in jobs.values():
        assert leftovers(docker_client, job.id) == []


def scaled(x: int, factor: int) -> int:
    print(f"{x} x {factor}")
    return x * factor


def test_a_four_point_sweep_builds_one_image_and_gets_four_results(
    base_image: str, docker_client: Any
) -> None:
    cfg = run.Partial(scaled, x=1, factor=1)
    exp = run.sweep(
        cfg, {"x": [2, 3], "factor": [10, 100]}, run.DockerExecutor(base_image=base_image)
    )
    jobs = exp.launch()
    assert set(exp.wait(timeout=180).values()) == {JobState.SUCCEEDED}
    assert sorted(exp.results().values()) == [20, 30, 200, 300]
    images = {job.record.handle["image"] for job in jobs.values()}
    assert len(images) == 1  # one build for the whole sweep
    labels = docker_client.images.get(images.pop()).labels
    assert len(labels["nemo-run-k8s.io/bundles"].split(",")) == 4
    for job in jobs.values():
        assert leftovers(docker_client, job.id) == []
