"""DockerExecutor without a daemon: options, the dry run, GPU refusals, log prefixes."""

from __future__ import annotations

import io
import sys

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.executors.docker import executor as de
from nemo_run_k8s.executors.docker import spec as ds
from nemo_run_k8s.executors.docker import supervisor as sup
from nemo_run_k8s.paths import JobPaths
from nemo_run_k8s.spec import Plan

SECRET = "tok-3f9a-never-print-me"


def train(lr: float = 0.1, steps: int = 10) -> float:
    return lr * steps


def plan(executor: de.DockerExecutor) -> Plan:
    return run.dryrun(run.Partial(train, lr=0.5), executor, name="train")


def test_defaults_follow_the_gpus() -> None:
    assert de.DockerExecutor().resources().nproc_per_node == 1
    assert de.DockerExecutor(gpus_per_node=4).resources().nproc_per_node == 4
    assert de.DockerExecutor(gpus_per_node=4, nproc_per_node=2).resources().nproc_per_node == 2
    resources = de.DockerExecutor(num_nodes=3, gpus_per_node=2).resources()
    assert (resources.num_nodes, resources.nproc_per_node, resources.world_size) == (3, 2, 6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_nodes": 0}, "num_nodes: expected an integer >= 1, got 0"),
        ({"gpus_per_node": -1}, "gpus_per_node: expected an integer >= 0"),
        ({"nproc_per_node": "2"}, "nproc_per_node: expected an integer >= 1, got '2'"),
        ({"num_nodes": True}, "num_nodes: expected an integer"),
        ({"master_port": 70000}, "master_port: 70000 is not a port"),
        ({"shm_size": "lots"}, "shm_size: 'lots' is not a size"),
        ({"shm_size": "8Gx"}, "shm_size: '8Gx' is not a size"),
        ({"env_vars": {"LR": 0.1}}, "must be a string"),
        ({"env_vars": {"RANK": "3"}}, "RANK is set by the executor"),
        ({"secret_env_vars": {"PET_NNODES": "3"}}, "PET_NNODES is set by the executor"),
        ({"env_vars": {"A": "1"}, "secret_env_vars": {"A": "2"}}, "also appear in env_vars"),
        ({"volumes": ["/data"]}, "is not 'HOST_PATH:CONTAINER_PATH[:ro|rw]'"),
        ({"volumes": ["/data:data"]}, "must be absolute"),
        ({"volumes": ["/data:/data:rx"]}, "is not 'HOST_PATH:CONTAINER_PATH[:ro|rw]'"),
        ({"base_image": ""}, "base_image: give an image name"),
        ({"network": "bridge"}, "network: 'bridge' is not one of 'host', 'job'"),
    ],
)
def test_wrong_options_are_refused_with_the_option_named(options: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match="DockerExecutor option") as caught:
        de.DockerExecutor(**options)
    assert message in str(caught.value)


def test_unknown_options_are_refused_with_a_suggestion() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        de.DockerExecutor(num_node=2)  # type: ignore[call-arg]
    assert "has no option 'num_node' (did you mean 'num_nodes'?)" in str(caught.value)
    assert "gpus_per_node" in str(caught.value)  # the real options are listed


@pytest.mark.parametrize(
    ("given", "kept"), [("8g", "8g"), ("8Gi", "8g"), ("512M", "512m"), (64, "64")]
)
def test_shm_size_takes_docker_and_kubernetes_spellings(given: object, kept: str) -> None:
    assert de.DockerExecutor(shm_size=given).shm_size == kept  # type: ignore[arg-type]


def test_volumes_resolve_relative_host_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    executor = de.DockerExecutor(volumes=["data:/data:ro"])
    assert executor.volumes == [f"{tmp_path}/data:/data:ro"]


def test_dry_run_on_the_jobs_own_network_shows_it_containers_env_and_recipes() -> None:
    executor = de.DockerExecutor(
        num_nodes=2,
        base_image="my/base:1",
        env_vars={"LR_SCHEDULE": "cosine"},
        master_port=29511,
        network="job",
    )
    p = plan(executor)
    network, node0, node1 = p.documents
    job_id = p.job_id
    assert network == {
        "kind": "network",
        "name": f"{job_id}-net",
        "driver": "bridge",
        "labels": {
            "app.kubernetes.io/managed-by": "nemo-run-k8s",
            "nemo-run-k8s.io/job-id": job_id,
            "nemo-run-k8s.io/job-name": "train",
        },
    }
    bundle_path = f"/opt/nemo_run_k8s/bundles/{p.manifest['sha256']}"
    assert node0["image"] == "nemo-run-k8s/job:<computed at build>"
    assert node0["command"] == [bundle_path, "--output", "/nemo_run_k8s/output"]
    assert node1["command"] == [bundle_path]  # only rank 0 writes the outcome
    assert [m["target"] for m in node0["mounts"]] == ["/nemo_run_k8s/output"]
    assert node1["mounts"] == []
    assert node0["network"] == node1["network"] == f"{job_id}-net"
    assert node1["labels"]["nemo-run-k8s.io/node-rank"] == "1"
    assert node1["env"] == {
        "MASTER_ADDR": f"{job_id}-node-0",
        "MASTER_PORT": "29511",
        "WORLD_SIZE": "2",
        "RANK": "1",
        "PET_MASTER_ADDR": f"{job_id}-node-0",
        "PET_MASTER_PORT": "29511",
        "PET_NNODES": "2",
        "PET_NODE_RANK": "1",
        "PET_NPROC_PER_NODE": "1",
        "PYTHONUNBUFFERED": "1",
        "LR_SCHEDULE": "cosine",
        **({"HOME": "/tmp"} if "user" in node1 else {}),
    }
    text = str(p)
    assert "ARG BASE_IMAGE" in text and "FROM nemo-run-k8s/env:<computed at build>" in text
    assert "# base image: my/base:1" in text
    assert "train.lr = 0.5" in text or "lr = 0.5" in text


def test_on_the_hosts_network_node_names_resolve_to_loopback_and_the_port_is_free() -> None:
    p = plan(de.DockerExecutor(num_nodes=3))  # network="host" by default
    assert [d["kind"] for d in p.documents] == ["container"] * 3  # no network to create
    names = [f"{p.job_id}-node-{n}" for n in range(3)]
    for node, doc in enumerate(p.documents):
        assert doc["network"] == "host" and doc["hostname"] == names[node]
        assert doc["extra_hosts"] == {name: "127.0.0.1" for name in names}
        assert doc["env"]["MASTER_ADDR"] == names[0]
    ports = {d["env"]["MASTER_PORT"] for d in p.documents}
    assert len(ports) == 1 and 20000 <= int(ports.pop()) < 32768
    config = ds.container_config(p.documents[1], "img", {})
    assert config["HostConfig"]["NetworkMode"] == "host"
    assert config["HostConfig"]["ExtraHosts"] == [f"{name}:127.0.0.1" for name in names]
    assert "NetworkingConfig" not in config  # Docker refuses aliases on the host's network
    # Jobs submitted one after another get different ports (chosen at random).
    executor = de.DockerExecutor(num_nodes=2)
    assert len({plan(executor).documents[0]["env"]["MASTER_PORT"] for _ in range(5)}) > 1


def test_ports_handed_out_by_this_process_are_not_handed_out_again() -> None:
    # An experiment plans its next job before the last one's node 0 listens, so the check
    # alone would not see the port taken; threads submitting at once share the record.
    import threading

    ports: list[int] = []

    def pick(count: int) -> None:
        ports.extend(de._free_port() for _ in range(count))

    threads = [threading.Thread(target=pick, args=(150,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ports) == 600 and len(set(ports)) == 600


def test_a_port_in_use_on_the_hosts_network_is_refused_before_anything_is_built() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not de._port_is_free(port)
        with pytest.raises(InvalidOptionError, match=f"master_port: port {port} is in use"):
            de.DockerExecutor(master_port=port).check_backend()
    assert de._port_is_free(port)


def test_torchrun_nodes_prefix_worker_lines_with_node_and_global_rank() -> None:
    env = ds.node_env(1, "m", 29500, num_nodes=2, nproc=2)
    assert env["WORLD_SIZE"] == "4" and env["RANK"] == "1"
    assert env["PET_TEE"] == "3"
    assert env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] == "[node1 rank${rank}] "


def test_gpus_are_split_between_nodes() -> None:
    p = plan(de.DockerExecutor(num_nodes=2, gpus_per_node=2))
    assert [d["gpus"]["device_ids"] for d in p.documents] == [["0", "1"], ["2", "3"]]
    assert p.documents[0]["env"]["PET_NPROC_PER_NODE"] == "2"


def test_the_engine_gets_what_docker_run_would_send(tmp_path) -> None:
    # The launch creates containers with this body, over the socket, without the docker SDK.
    host = tmp_path / "data"
    host.mkdir()
    executor = de.DockerExecutor(
        num_nodes=2, gpus_per_node=1, shm_size="2Gi", volumes=[f"{host}:/data:ro"], network="job"
    )
    doc = plan(executor).documents[2]
    config = ds.container_config(doc, "nemo-run-k8s/job:abc", {"A": "1", "TOKEN": "s3cret"})
    assert config["Image"] == "nemo-run-k8s/job:abc" and config["Cmd"] == doc["command"]
    assert config["Env"] == ["A=1", "TOKEN=s3cret"]
    assert config["Labels"][ds.NODE_LABEL] == "1"
    host_config = config["HostConfig"]
    assert host_config["ShmSize"] == 2 * 1024**3 and host_config["Init"] is True
    assert host_config["NetworkMode"] == doc["network"]
    assert host_config["Mounts"] == [
        {"Target": "/data", "Source": str(host), "Type": "bind", "ReadOnly": True}
    ]
    assert host_config["DeviceRequests"][0]["DeviceIDs"] == ["1"]
    assert host_config["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
    endpoints = config["NetworkingConfig"]["EndpointsConfig"]
    assert endpoints == {doc["network"]: {"Aliases": [doc["name"]]}}
    assert [ds.size_bytes(s) for s in ("512m", "8g", "100")] == [512 * 1024**2, 8 * 1024**3, 100]


def test_secret_values_are_masked_in_the_plan_and_repr() -> None:
    executor = de.DockerExecutor(secret_env_vars={"API_TOKEN": SECRET})
    p = plan(executor)
    assert p.documents[0]["env"]["API_TOKEN"] == ds.SECRET_MASK
    assert SECRET not in str(p) and SECRET not in repr(p.documents)
    assert SECRET not in repr(executor) and "API_TOKEN" in repr(executor)


def test_the_dry_run_needs_no_docker_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` now fails
    assert len(plan(de.DockerExecutor(num_nodes=3)).documents) == 3


def test_gpu_refusal_without_an_nvidia_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds.shutil, "which", lambda name: None)
    with pytest.raises(InvalidOptionError) as caught:
        ds.check_gpus({"Runtimes": {"runc": {}}}, 2, 1, host_gpus=None)
    message = str(caught.value)
    assert "no NVIDIA runtime (its runtimes: runc)" in message
    assert "DockerExecutor(num_nodes=2, gpus_per_node=1)" in message
    assert "Nothing was created" in message


def test_gpu_refusal_when_the_host_has_too_few() -> None:
    info = {"Runtimes": {"runc": {}, "nvidia": {}}}
    ds.check_gpus(info, 2, 4, host_gpus=8)  # fits
    with pytest.raises(InvalidOptionError, match="asks for 12 GPUs, but this host has 8"):
        ds.check_gpus(info, 3, 4, host_gpus=8)


def test_log_lines_are_prefixed_with_node_and_rank() -> None:
    out = io.BytesIO()
    sup.write_lines([b"a\nb", b"c\npartial"], out, sup.line_prefixer(1, 1))
    assert out.getvalue().decode().splitlines() == [
        "[node1 rank1] a",
        "[node1 rank1] bc",
        "[node1 rank1] partial",
    ]
    torchrun = sup.line_prefixer(1, 2)
    assert torchrun("[node1 rank3] loss 0.1") == "[node1 rank3] loss 0.1"
    assert torchrun("W1105 torchrun warning") == "[node1] W1105 torchrun warning"


@pytest.mark.parametrize(
    ("codes", "cancelled", "state"),
    [
        ({0: 0, 1: 0}, False, "SUCCEEDED"),
        ({0: 143, 1: 1}, False, "FAILED"),
        ({0: 143, 1: 143}, True, "CANCELLED"),
        ({0: 0, 1: 0}, True, "SUCCEEDED"),  # it had finished before the cancel
        ({0: 0, 1: None}, False, "FAILED"),
    ],
)
def test_final_state_from_exit_codes(tmp_path, codes, cancelled, state) -> None:
    if cancelled:
        JobPaths(tmp_path).cancel_requested.touch()
    assert sup.final_state(tmp_path, codes)[0] == state


def test_failure_reason_names_the_node_that_failed_first(tmp_path) -> None:
    # Node 1 failed; node 0 was then stopped (143): the reason is node 1's.
    assert sup.final_state(tmp_path, {0: 143, 1: 2}, first_failed=1) == (
        "FAILED",
        "node 1 exited with code 2",
    )
    # Without the order (the supervisor died), a stop signal is not taken for the cause.
    assert sup.final_state(tmp_path, {0: 143, 1: 2})[1] == "node 1 exited with code 2"
