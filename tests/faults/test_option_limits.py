"""Sizes and paths the API server or Docker would refuse are refused first, naming the option.

Each case used to pass construction (and the dry run), to fail only at the
cluster or engine, or to exhaust memory building the plan.
"""

from __future__ import annotations

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.executors.kubernetes.options import ConfigMapVolume, PVCVolume, SecretVolume
from nemo_run_k8s.paths import IMAGE_BUNDLE_ROOT

INT32 = 2**31


def train(lr: float = 0.1) -> float:
    return lr


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"memory": "-1Gi"}, "memory"),
        ({"cpu": "-2"}, "cpu"),
        ({"cpu": -2}, "cpu"),
        ({"shm_size": "-5Gi"}, "shm_size"),
        ({"num_nodes": INT32}, "num_nodes"),
        ({"gpus_per_node": INT32}, "gpus_per_node"),
        ({"gpus_per_node": 8, "nproc_per_node": INT32}, "nproc_per_node"),
        ({"backoff_limit": INT32}, "backoff_limit"),
        ({"ttl_seconds_after_finished": INT32}, "ttl_seconds_after_finished"),
        ({"volumes": [PVCVolume("data", "/")]}, "volumes"),
        ({"volumes": [PVCVolume("data", "/opt")]}, "volumes"),
        ({"volumes": [PVCVolume("data", IMAGE_BUNDLE_ROOT + "/")]}, "volumes"),
        ({"volumes": [PVCVolume("data", "/dev")]}, "volumes"),
        ({"volumes": [PVCVolume("data", "/mnt/../opt")]}, "volumes"),
        ({"volumes": [PVCVolume("a", "/mnt/x"), PVCVolume("b", "/mnt/x/")]}, "volumes"),
        ({"volumes": [PVCVolume("data", "/mnt", sub_path="../etc")]}, "volumes"),
        ({"volumes": [PVCVolume("data", "/mnt", sub_path="a/../../etc")]}, "volumes"),
        ({"volumes": [PVCVolume("data", "/mnt", sub_path="/etc")]}, "volumes"),
        ({"volumes": [ConfigMapVolume("cm", "/cfg", items={"k": "../x"})]}, "volumes"),
        ({"volumes": [SecretVolume("s", "/sec", items={"k": "/etc/passwd"})]}, "volumes"),
        ({"code_dir": ".", "volumes": [PVCVolume("data", "/workspace")]}, "volumes"),
        ({"image_repo": "registry.example.com/Team/jobs"}, "image_repo"),
        ({"image_repo": "registry.example.com//jobs"}, "image_repo"),
        ({"image_repo": "registry.example.com/jobs/"}, "image_repo"),
        ({"image_repo": "registry.example.com/jobs--"}, "image_repo"),
        ({"image_repo": "reg_istry.example.com/jobs"}, "image_repo"),
        ({"labels": {"team": "-starts-with-a-dash"}}, "labels"),
        ({"labels": {"team": "x" * 64}}, "labels"),
        ({"node_selector": {"pool": "has space"}}, "node_selector"),
        ({"queue": "q" * 64}, "queue"),
        ({"annotations": {"note": "x" * 300_000}}, "annotations"),
        ({"annotations": {f"k{i}": "x" * 100_000 for i in range(3)}}, "annotations"),
    ],
)
def test_kubernetes_refuses_what_the_api_server_would(options: dict, option: str) -> None:
    options = {"image_repo": "registry.example.com/jobs", **options}
    with pytest.raises(InvalidOptionError) as caught:
        run.KubernetesExecutor(**options)
    message = str(caught.value)
    assert message.startswith(f"KubernetesExecutor option {option}:"), message
    assert len(message) < 600  # a 300 KB value is not echoed back


@pytest.mark.parametrize(
    "options",
    [
        {"image_repo": "localhost:5000/team/jobs"},
        {"image_repo": "ghcr.io/org/repo_name/sub-dir"},
        {"image_repo": "Registry.Example.com:443/a__b/c.d"},
        {"image_repo": "jobs"},
        {"memory": "0", "cpu": "500m", "shm_size": "+1Gi"},
        {"num_nodes": INT32 - 1, "backoff_limit": 0},
        {"volumes": [PVCVolume("data", "/mnt/data/", sub_path="runs/a")]},
        {"volumes": [PVCVolume("data", "/workspace")]},  # no code_dir: nothing there
        {"volumes": [PVCVolume("data", "/opt/nemo_run_k8s_data")]},
        {"labels": {"team": "ml.infra_1"}, "node_selector": {"pool": "a100"}},
        {"annotations": {"note": "x" * 200_000}},
    ],
)
def test_kubernetes_accepts_values_near_the_limits(options: dict) -> None:
    options = {"image_repo": "registry.example.com/jobs", **options}
    run.KubernetesExecutor(**options)


def test_a_volume_at_a_reserved_path_says_what_it_would_hide() -> None:
    with pytest.raises(InvalidOptionError, match="would hide /opt/nemo_run_k8s/bundles"):
        run.KubernetesExecutor(
            image_repo="registry.example.com/jobs", volumes=[PVCVolume("data", "/opt")]
        )


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"gpus_per_node": 10**18}, "gpus_per_node"),
        ({"num_nodes": 64, "gpus_per_node": 64}, "gpus_per_node"),
        ({"num_nodes": 10**9}, "num_nodes"),
        ({"nproc_per_node": 10**9}, "nproc_per_node"),
        ({"volumes": ["/tmp:/data", "/var:/data"]}, "volumes"),
        ({"volumes": ["/tmp:/data", "/var:/data/"]}, "volumes"),
        ({"volumes": ["/tmp:/"]}, "volumes"),
        ({"volumes": ["/tmp:/opt"]}, "volumes"),
        ({"volumes": [f"/tmp:{IMAGE_BUNDLE_ROOT}"]}, "volumes"),
        ({"volumes": [f"/tmp:{IMAGE_BUNDLE_ROOT}/x"]}, "volumes"),
        ({"volumes": ["/tmp:/nemo_run_k8s/output"]}, "volumes"),
        ({"volumes": ["/tmp:/mnt/../opt"]}, "volumes"),
        ({"volumes": ["/tmp:/dev/shm"]}, "volumes"),
        ({"code_dir": ".", "volumes": ["/tmp:/workspace"]}, "volumes"),
    ],
)
def test_docker_refuses_what_the_engine_would_or_what_hides_the_job(
    options: dict, option: str
) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        run.DockerExecutor(**options)
    assert str(caught.value).startswith(f"DockerExecutor option {option}:"), str(caught.value)


def test_docker_gpu_count_is_refused_before_the_plan_is_built() -> None:
    # The plan lists every GPU id: 10**18 of them exhausted memory before the GPU check.
    with pytest.raises(InvalidOptionError, match="gpus_per_node"):
        run.dryrun(run.Partial(train), run.DockerExecutor(gpus_per_node=10**18))


def test_docker_accepts_ordinary_volumes() -> None:
    executor = run.DockerExecutor(volumes=["/tmp:/data:ro", "/var/tmp:/scratch"], gpus_per_node=8)
    assert [v.split(":")[1] for v in executor.volumes or []] == ["/data", "/scratch"]
