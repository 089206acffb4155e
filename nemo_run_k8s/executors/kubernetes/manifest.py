"""The pure builder of Kubeflow PyTorchJob manifests.

Nothing here talks to a cluster. :func:`build_pytorchjob` turns the validated
options (``options.KubernetesOptions``) into the exact dict that is sent to the
API server; :func:`webhook_violations` re-checks that dict against the rules the
Kubeflow training operator's validating webhook enforces (the CRD schema alone
does not carry them), so a bad job is caught before any request.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from nemo_run_k8s import labels as k8s_labels
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.executors.kubernetes.options import (
    ConfigMapVolume,
    KubernetesOptions,
    PVCVolume,
)
from nemo_run_k8s.paths import image_bundle_path
from nemo_run_k8s.runtime.contract import OUTCOME_IN_LOG_ENV

GROUP = "kubeflow.org"
VERSION = "v1"
PLURAL = "pytorchjobs"
KIND = "PyTorchJob"
CONTAINER_NAME = "pytorch"
REPLICA_TYPES = ("Master", "Worker")
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SHM_VOLUME = "dshm"

# The operator names pods and Services "<job>-worker-<index>"; those must stay
# DNS-1035 labels (<= 63 characters), so job names leave room for the suffix.
_MAX_JOB_NAME = 63 - len("-worker-") - 5
_DIGEST_REF_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def job_name(name: str, job_id: str) -> str:
    """The PyTorchJob name: a DNS-1035 label from ``name``, unique through ``job_id``.

    Job ids made by ``run.submit`` (``train-3f9a1c2b``) are such labels already
    and are used as they are, so ``kubectl get pytorchjob <job id>`` finds the job.
    """
    if k8s_labels.is_dns1035_label(job_id) and len(job_id) <= _MAX_JOB_NAME:
        return job_id
    suffix = re.sub(r"[^a-z0-9]+", "", job_id.lower())
    if not suffix or len(suffix) > 12:
        import hashlib

        suffix = hashlib.sha256(job_id.encode()).hexdigest()[:8]
    return k8s_labels.dns1035_name(name, max_len=_MAX_JOB_NAME, suffix=suffix)


def entrypoint_command(bundle_sha256: str) -> list[str]:
    """The container command: run the bundle baked into the job image."""
    return ["python3", "-m", "nemo_run_k8s.runtime.entrypoint", image_bundle_path(bundle_sha256)]


def _volumes(opts: KubernetesOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if opts.shm_size:
        volumes.append(
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": opts.shm_size}}
        )
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    for index, volume in enumerate(opts.volumes or ()):
        mount: dict[str, Any] = {"mountPath": volume.mount_path}
        if isinstance(volume, PVCVolume):
            name = f"pvc-{index}"
            source: dict[str, Any] = {"claimName": volume.claim_name}
            if volume.read_only:
                source["readOnly"] = True
            volumes.append({"name": name, "persistentVolumeClaim": source})
            mount["readOnly"] = volume.read_only
            if volume.sub_path:
                mount["subPath"] = volume.sub_path
        else:
            if isinstance(volume, ConfigMapVolume):
                name, kind, source = f"configmap-{index}", "configMap", {"name": volume.name}
            else:
                name, kind, source = f"secret-{index}", "secret", {"secretName": volume.secret_name}
            if volume.items:
                source["items"] = [{"key": k, "path": p} for k, p in volume.items.items()]
            volumes.append({"name": name, kind: source})
            mount["readOnly"] = True
        mounts.append({"name": name, **mount})
    return volumes, mounts


def _container(opts: KubernetesOptions, image: str, command: list[str]) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": OUTCOME_IN_LOG_ENV, "value": "1"},
    ]
    if opts.resources().nproc_per_node > 1:
        # torchrun marks each worker's lines with its rank; `logs` adds the pod: [worker1 rank9]
        env += [
            {"name": "PET_TEE", "value": "3"},
            {"name": "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE", "value": "[rank${rank}] "},
        ]
    env += [{"name": k, "value": v} for k, v in (opts.env_vars or {}).items()]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for k, (secret, key) in opts.secret_refs().items()
    ]
    limits: dict[str, Any] = {}
    if opts.cpu:
        limits["cpu"] = opts.cpu
    if opts.memory:
        limits["memory"] = opts.memory
    resources: dict[str, Any] = {"requests": dict(limits)} if limits else {}
    if opts.gpus_per_node:
        limits["nvidia.com/gpu"] = opts.gpus_per_node
    if limits:
        resources["limits"] = limits
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command),
        "env": env,
    }
    if resources:
        container["resources"] = resources
    _, mounts = _volumes(opts)
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _pod_spec(opts: KubernetesOptions, image: str, command: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [_container(opts, image, command)]}
    volumes, _ = _volumes(opts)
    if volumes:
        spec["volumes"] = volumes
    if opts.node_selector:
        spec["nodeSelector"] = dict(opts.node_selector)
    if opts.tolerations:
        spec["tolerations"] = [dict(t) for t in opts.tolerations]
    if opts.affinity:
        spec["affinity"] = dict(opts.affinity)
    if opts.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    if opts.service_account:
        spec["serviceAccountName"] = opts.service_account
    if opts.priority_class:
        spec["priorityClassName"] = opts.priority_class
    return spec


def build_pytorchjob(
    opts: KubernetesOptions,
    *,
    name: str,
    image: str,
    command: list[str],
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The PyTorchJob for ``opts``: pure, deterministic, ready to send.

    ``name`` must already be a DNS-1035 label (see :func:`job_name`); ``labels``
    (the job's identity labels) go on the job and on every pod template, with
    the user's ``labels`` added.
    """
    all_labels = {**dict(opts.labels or {}), **dict(labels)}
    job_labels = dict(all_labels)
    if opts.queue:
        job_labels[KUEUE_QUEUE_LABEL] = opts.queue
    template_meta: dict[str, Any] = {"labels": all_labels}
    if opts.annotations:
        template_meta["annotations"] = dict(opts.annotations)

    def replica(count: int) -> dict[str, Any]:
        # deep copies: no shared objects, so YAML output has no anchors/aliases
        return copy.deepcopy(
            {
                "replicas": count,
                "restartPolicy": opts.restart_policy,
                "template": {"metadata": template_meta, "spec": _pod_spec(opts, image, command)},
            }
        )

    replicas = {"Master": replica(1)}
    if opts.num_nodes > 1:
        replicas["Worker"] = replica(opts.num_nodes - 1)
    run_policy: dict[str, Any] = {"cleanPodPolicy": opts.clean_pod_policy}
    # The operator (v1.9) deletes every pod of a job past its backoffLimit, whatever
    # cleanPodPolicy says, and with them the logs, the outcome and the termination reason. With
    # restartPolicy Never there are no restarts to count: the limit would only delete the evidence.
    if opts.restart_policy != "Never":
        run_policy["backoffLimit"] = opts.backoff_limit
    if opts.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = opts.ttl_seconds_after_finished
    if opts.active_deadline_seconds is not None:
        run_policy["activeDeadlineSeconds"] = opts.active_deadline_seconds
    if opts.queue:
        scheduling: dict[str, Any] = {"queue": opts.queue, "minAvailable": opts.num_nodes}
        if opts.priority_class:
            scheduling["priorityClass"] = opts.priority_class
        run_policy["schedulingPolicy"] = scheduling
    metadata: dict[str, Any] = {"name": name, "namespace": opts.namespace, "labels": job_labels}
    if opts.annotations:
        metadata["annotations"] = dict(opts.annotations)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "nprocPerNode": str(opts.resources().nproc_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": replicas,
        },
    }


def webhook_violations(job: Mapping[str, Any], require_digest: bool = False) -> list[str]:
    """What the training operator's validating webhook (v1.9) would reject in ``job``.

    Also checks our own rules: pod names fit a DNS-1035 label, and with
    ``require_digest`` every image is pinned by digest.
    """
    problems: list[str] = []
    name = job.get("metadata", {}).get("name", "")
    if not isinstance(name, str) or not k8s_labels.is_dns1035_label(name):
        problems.append(f"metadata.name {name!r} is not a DNS-1035 label")
    spec = job.get("spec", {})
    replicas = spec.get("pytorchReplicaSpecs") or {}
    if not replicas:
        problems.append("spec.pytorchReplicaSpecs is empty")
    for rtype, rspec in replicas.items():
        where = f"spec.pytorchReplicaSpecs.{rtype}"
        if rtype not in REPLICA_TYPES:
            problems.append(f"{where}: replica type must be Master or Worker")
        count = rspec.get("replicas")
        if rtype == "Master" and count is not None and count != 1:
            problems.append(f"{where}.replicas must be 1, got {count}")
        if rtype == "Worker" and count is not None and count < 1:
            problems.append(f"{where}.replicas must be >= 1, got {count}")
        if rtype == "Worker" and isinstance(name, str) and count:
            pod = f"{name}-worker-{count - 1}"
            if len(pod) > 63:
                problems.append(f"{where}: pod name {pod!r} is longer than 63 characters")
        containers = rspec.get("template", {}).get("spec", {}).get("containers") or []
        if not containers:
            problems.append(f"{where}.template.spec.containers is empty")
        for index, container in enumerate(containers):
            image = container.get("image")
            if not image:
                problems.append(f"{where}.template.spec.containers[{index}].image is empty")
            elif require_digest and not _DIGEST_REF_RE.match(image):
                problems.append(f"{where}: image {image!r} is not pinned by digest")
        if containers and not any(c.get("name") == CONTAINER_NAME for c in containers):
            problems.append(f"{where}: no container named {CONTAINER_NAME!r}")
    elastic = spec.get("elasticPolicy")
    if elastic is not None:
        if "Worker" not in replicas:
            problems.append("spec.elasticPolicy needs a Worker replica spec")
        if elastic.get("nProcPerNode") is not None and spec.get("nprocPerNode") is not None:
            problems.append("spec.elasticPolicy.nProcPerNode and spec.nprocPerNode are both set")
    return problems


def check_pytorchjob(job: Mapping[str, Any], require_digest: bool = False) -> None:
    """Raises :class:`InvalidOptionError` listing every webhook-rule violation in ``job``."""
    problems = webhook_violations(job, require_digest=require_digest)
    if problems:
        raise InvalidOptionError(
            "the PyTorchJob would be rejected by the Kubeflow training operator:\n  "
            + "\n  ".join(problems)
        )
