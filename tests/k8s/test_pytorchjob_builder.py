"""The pure PyTorchJob builder: golden YAML, the real CRD schema, the webhook's rules, options.

Regenerate the golden files after an intended change with
``NEMO_RUN_K8S_UPDATE_GOLDEN=1 pytest tests/k8s/test_pytorchjob_builder.py`` and
review the diff. The CRD comes from ``<repo>/../shared/k8s`` (override the
directory with ``NEMO_RUN_K8S_SHARED_DIR``); its tests skip where it is absent.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
from nemo_run_k8s.executors.kubernetes.manifest import (
    check_pytorchjob,
    job_name,
    webhook_violations,
)
from nemo_run_k8s.executors.kubernetes.options import ConfigMapVolume, PVCVolume, SecretVolume
from nemo_run_k8s.labels import is_dns1035_label
from nemo_run_k8s.spec import JobIdentity
from tests.conftest import REPO_ROOT as REPO
from tests.k8s.lifecycle import fake_bundle

GOLDEN = Path(__file__).parent / "golden"
SHARED = Path(os.environ.get("NEMO_RUN_K8S_SHARED_DIR") or REPO.parent / "shared")
CRD = SHARED / "k8s" / "kubeflow.org_pytorchjobs.yaml"


def single_node_cpu() -> KubernetesExecutor:
    return KubernetesExecutor(image_repo="registry.example.com/team/jobs")


def four_by_eight_everything() -> KubernetesExecutor:
    return KubernetesExecutor(
        namespace="ml-team",
        image_repo="registry.example.com/team/jobs",
        num_nodes=4,
        gpus_per_node=8,
        nproc_per_node=8,
        base_image="nvcr.io/nvidia/pytorch:24.09-py3",
        cpu="96",
        memory="1024Gi",
        shm_size="64Gi",
        volumes=[
            PVCVolume("checkpoints", "/ckpt", sub_path="llama"),
            PVCVolume("datasets", "/data", read_only=True),
            ConfigMapVolume("train-config", "/etc/train", items={"config.yaml": "config.yaml"}),
            SecretVolume("ssh-keys", "/etc/ssh-keys"),
        ],
        env_vars={"NCCL_DEBUG": "INFO", "HF_HOME": "/data/hf"},
        secret_env_vars={"HF_TOKEN": ("hf-secret", "token"), "WANDB_API_KEY": ("wandb", "api-key")},
        node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        image_pull_secrets=["registry-creds"],
        service_account="nemo-run-k8s",
        priority_class="training-high",
        labels={"team": "llm"},
        annotations={"example.com/owner": "alice"},
        restart_policy="Never",
        backoff_limit=0,
        active_deadline_seconds=86400,
        ttl_seconds_after_finished=3600,
        clean_pod_policy="Running",
        queue="gpu-queue",
        kube_context="prod",
    )


CASES = {
    "single_node_cpu": single_node_cpu,
    "four_nodes_8gpu_all_options": four_by_eight_everything,
}
JOB = JobIdentity(
    job_id="llama-pretrain-a1b2c3d4",
    name="Llama Pretrain",
    job_dir=Path("/tmp"),
    experiment="sweep-1",
)


def build(executor: KubernetesExecutor) -> dict[str, Any]:
    return executor.plan(fake_bundle(Path("/tmp")), JOB).documents[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_builder_matches_golden_yaml(case: str) -> None:
    text = yaml.safe_dump(build(CASES[case]()), sort_keys=False)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("NEMO_RUN_K8S_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; regenerate it if the change is intended"


def test_single_node_has_only_a_master_and_multi_node_has_workers() -> None:
    single = build(single_node_cpu())["spec"]
    assert list(single["pytorchReplicaSpecs"]) == ["Master"]
    assert single["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
    container = single["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert "resources" not in container  # no GPU limit without GPUs
    multi = build(four_by_eight_everything())["spec"]
    assert multi["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
    assert multi["nprocPerNode"] == "8"
    worker = multi["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert worker["command"] == [
        "python3",
        "-m",
        "nemo_run_k8s.runtime.entrypoint",
        "/opt/nemo_run_k8s/bundles/" + "ab" * 32,
    ]


def test_secret_env_vars_are_references_never_values() -> None:
    doc = build(four_by_eight_everything())
    env = doc["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    assert by_name["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-secret", "key": "token"}},
    }
    assert "value" not in by_name["WANDB_API_KEY"]
    assert by_name["NEMO_RUN_K8S_OUTCOME_IN_LOG"]["value"] == "1"


def test_queue_sets_kueue_label_and_gang_scheduling() -> None:
    doc = build(four_by_eight_everything())
    assert doc["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert doc["spec"]["runPolicy"]["schedulingPolicy"] == {
        "queue": "gpu-queue",
        "minAvailable": 4,
        "priorityClass": "training-high",
    }


@pytest.mark.parametrize(
    "name, job_id",
    [("Llama Pretrain", "a1"), ("9-starts-with-digit", "x"), ("A" * 200, "f" * 32), ("___", "1")],
)
def test_job_names_are_dns1035_and_leave_room_for_pod_names(name: str, job_id: str) -> None:
    result = job_name(name, job_id)
    assert is_dns1035_label(result), result
    assert len(f"{result}-worker-99999") <= 63


def test_plan_prints_a_yaml_stream_with_exactly_the_manifest() -> None:
    executor = four_by_eight_everything()
    plan = executor.plan(fake_bundle(Path("/tmp")), JOB)
    text = str(plan)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert docs == plan.documents
    assert "UNRESOLVED" in text  # the placeholder image says so
    assert "&id" not in text  # no YAML anchors: every object written out in full
    assert docs[0]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("registry.example.com/team/jobs:" + "ab" * 8)


def test_plan_needs_no_cluster_and_does_not_import_kubernetes() -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from types import SimpleNamespace\n"
        "from nemo_run_k8s.executors.base import JobIdentity\n"
        "from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor\n"
        "ex = KubernetesExecutor(image_repo='r.example.com/j', kubeconfig='/nonexistent')\n"
        "b = SimpleNamespace(sha256='ab' * 32, manifest={}, path=Path('/tmp'))\n"
        "p = ex.plan(b, JobIdentity('i1', 'n', Path('/tmp')))\n"
        "print(str(p)[:10], 'kubernetes' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "KUBECONFIG": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-1] == "False"


@pytest.fixture(scope="module")
def crd_validator() -> Any:
    if not CRD.exists():
        pytest.skip(f"CRD schema not found at {CRD} (set NEMO_RUN_K8S_SHARED_DIR)")
    import jsonschema

    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_jobs_validate_against_the_crd_schema(case: str, crd_validator: Any) -> None:
    doc = build(CASES[case]())
    errors = [f"{list(e.path)}: {e.message}" for e in crd_validator.iter_errors(doc)]
    assert errors == []
    assert webhook_violations(doc) == []


def test_the_crd_schema_check_can_fail(crd_validator: Any) -> None:
    doc = build(single_node_cpu())
    doc["spec"]["nprocPerNode"] = 1  # the CRD wants a string
    doc["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "resources"
    ] = {"limits": {"nvidia.com/gpu": "eight"}}
    messages = " | ".join(e.message for e in crd_validator.iter_errors(doc))
    assert "1 is not of type 'string'" in messages
    assert "'eight'" in messages


def _mutate(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(build(four_by_eight_everything()))
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is None:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return doc


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("metadata.name", "Bad_Name", "not a DNS-1035 label"),
        ("spec.pytorchReplicaSpecs.Chief", {"replicas": 1}, "must be Master or Worker"),
        ("spec.pytorchReplicaSpecs.Master.replicas", 2, "Master.replicas must be 1"),
        ("spec.pytorchReplicaSpecs.Worker.replicas", 0, "Worker.replicas must be >= 1"),
        (
            "spec.pytorchReplicaSpecs.Worker.template.spec.containers.0.name",
            "trainer",
            "no container named 'pytorch'",
        ),
        ("spec.pytorchReplicaSpecs.Master.template.spec.containers.0.image", "", "image is empty"),
        ("spec.pytorchReplicaSpecs.Master.template.spec.containers", [], "containers is empty"),
        ("spec.elasticPolicy", {"nProcPerNode": 8}, "both set"),
    ],
)
def test_webhook_rule_violations_are_caught(path: str, value: Any, message: str) -> None:
    doc = _mutate(path, value)
    with pytest.raises(InvalidOptionError, match="training operator") as info:
        check_pytorchjob(doc)
    assert message in str(info.value)


def test_unpinned_images_are_rejected_when_a_digest_is_required() -> None:
    doc = build(single_node_cpu())
    assert webhook_violations(doc) == []
    assert "not pinned by digest" in " ".join(webhook_violations(doc, require_digest=True))


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "image_repo: is required"),
        ({"image_repo": "r.example.com/jobs:latest"}, "has a tag"),
        ({"num_nodes": 0}, "num_nodes: expected an integer from 1"),
        ({"num_nodes": "2"}, "num_nodes: expected an integer"),
        ({"gpus_per_node": 8, "nproc_per_node": 16}, "each process needs its own GPU"),
        ({"memory": "64GB"}, "not a Kubernetes quantity"),
        ({"namespace": "Team_A"}, "not a valid namespace name"),
        ({"volumes": [{"pvc": "x"}]}, "use run.PVCVolume"),
        ({"volumes": [PVCVolume("data", "relative/path")]}, "not an absolute path"),
        ({"volumes": [PVCVolume("a", "/x"), PVCVolume("b", "/x")]}, "two volumes are mounted"),
        ({"volumes": [PVCVolume("a", "/dev/shm")]}, "would hide /dev/shm"),
        ({"env_vars": {"MASTER_ADDR": "x"}}, "set by the training operator"),
        ({"env_vars": {"A": 1}}, "expected str keys and values"),
        ({"secret_env_vars": {"TOKEN": ("no-key",)}}, "does not name a Secret key"),
        ({"env_vars": {"T": "1"}, "secret_env_vars": {"T": ("s", "k")}}, "also in env_vars"),
        ({"tolerations": [{"key": "a", "operator": "Maybe"}]}, "Equal or Exists"),
        ({"tolerations": [{"taint": "a"}]}, "is not a Toleration"),
        ({"affinity": {"nodeAffinty": {}}}, "affinity: expected a dict with keys"),
        ({"image_pull_secrets": "creds"}, "expected a list of Secret names"),
        ({"labels": {"team": "has space"}}, "not a valid label value"),
        ({"restart_policy": "Sometimes"}, "one of ('OnFailure'"),
        ({"clean_pod_policy": "none"}, "one of ('None'"),
        ({"backoff_limit": -1}, "backoff_limit: expected an integer from 0"),
        ({"queue": "Bad Queue"}, "not a valid LocalQueue name"),
        ({"unschedulable_timeout": -5}, "expected seconds >= 0"),
    ],
)
def test_bad_options_are_rejected_with_the_option_named(options: dict, message: str) -> None:
    options = {"image_repo": "registry.example.com/jobs", **options}
    if message == "image_repo: is required":
        options.pop("image_repo")
    with pytest.raises(InvalidOptionError) as info:
        KubernetesExecutor(**options)
    assert message in str(info.value)
    assert str(info.value).startswith("KubernetesExecutor option")


def test_unknown_option_is_refused_naming_the_right_one() -> None:
    with pytest.raises(
        InvalidOptionError, match=r"'gpus_per_nod' \(did you mean 'gpus_per_node'\?\)"
    ):
        KubernetesExecutor(image_repo="r.example.com/j", gpus_per_nod=8)  # type: ignore[call-arg]


def test_resources_report_processes_and_gpus() -> None:
    res = four_by_eight_everything().resources()
    assert (res.num_nodes, res.nproc_per_node, res.gpus_per_node, res.world_size) == (4, 8, 8, 32)
