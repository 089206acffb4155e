"""Typed, validated options of the KubernetesExecutor (no I/O).

Wrong or unknown values are rejected on construction with an
:class:`~nemo_run_k8s.errors.InvalidOptionError` that names the option and says
what to write instead.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nemo_run_k8s import labels as k8s_labels
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.paths import IMAGE_BUNDLE_ROOT
from nemo_run_k8s.spec import DEFAULT_BASE_IMAGE, ImageSpec, Resources

_QUANTITY_RE = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
# Variables the training operator or the entrypoint own; a user value would break the job.
_RESERVED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PYTHONUNBUFFERED")
_RESERVED_ENV_PREFIXES = ("PET_", "NEMO_RUN_K8S_")

#: The largest value of an int32 field (replicas, backoffLimit, ttlSecondsAfterFinished).
INT32_MAX = 2**31 - 1
#: The API server refuses an object whose annotations total more than this (keys + values).
ANNOTATIONS_MAX_BYTES = 256 * 1024
#: Where the job image keeps the code of ``code_dir`` (see resources/job.Dockerfile).
CODE_DIR_IN_IMAGE = "/workspace"
# An image repository as Docker's reference grammar has it (distribution/reference):
# an optional registry host[:port], then lowercase path components.
_REPO_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$"
)
_REPO_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")

RESTART_POLICIES = ("OnFailure", "Never", "Always", "ExitCode")
CLEAN_POD_POLICIES = ("None", "Running", "All")
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_AFFINITY_KEYS = {"nodeAffinity", "podAffinity", "podAntiAffinity"}


@dataclasses.dataclass(frozen=True)
class PVCVolume:
    """A PersistentVolumeClaim mounted into every replica."""

    claim_name: str
    mount_path: str
    read_only: bool = False
    sub_path: str | None = None


@dataclasses.dataclass(frozen=True)
class ConfigMapVolume:
    """A ConfigMap mounted read-only; ``items`` maps keys to file names (default: all keys)."""

    name: str
    mount_path: str
    items: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class SecretVolume:
    """A Secret mounted read-only as files; its values never enter the manifest."""

    secret_name: str
    mount_path: str
    items: Mapping[str, str] | None = None


Volume = PVCVolume | ConfigMapVolume | SecretVolume


def _fail(option: str, problem: str, hint: str = "") -> InvalidOptionError:
    message = f"KubernetesExecutor option {option}: {problem}"
    return InvalidOptionError(message + (f"; {hint}" if hint else ""))


def _check_int(
    option: str, value: object, minimum: int, allow_none: bool = False, maximum: int = INT32_MAX
) -> None:
    """An int in ``[minimum, maximum]``; the default maximum is what an int32 field holds."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        kind = "an integer" + (" or None" if allow_none else "")
        raise _fail(option, f"expected {kind} from {minimum} to {maximum}, got {value!r}")


def _check_quantity(option: str, value: object, example: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(option, f"expected a Kubernetes quantity such as {example!r}, got {value!r}")
    text = str(value)
    if not _QUANTITY_RE.match(text):
        raise _fail(option, f"{text!r} is not a Kubernetes quantity", f"write e.g. {example!r}")
    if text.startswith("-"):
        raise _fail(option, f"{text!r} is negative", f"write e.g. {example!r}")
    return text


def _check_str_map(option: str, value: object, check_keys: bool = False) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(option, f"expected a dict of str to str, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _fail(option, f"expected str keys and values, got {_short(key)}: {_short(item)}")
        if check_keys and not k8s_labels.is_label_key(key):
            raise _fail(option, f"{_short(key)} is not a valid Kubernetes label/annotation key")
        out[key] = item
    return out


def _short(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a 300 KB value is not worth printing."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text):,} characters)"


def _check_image_repo(repo: object) -> None:
    """A repository by Docker's reference grammar: ``[host[:port]/]path``, lowercase, no tag."""
    if not isinstance(repo, str) or not repo or "@" in repo or re.search(r"\s", repo):
        raise _fail("image_repo", f"{_short(repo)} is not an image repository", "no tag or digest")
    first, _, rest = repo.partition("/")
    # Docker reads the first component as the registry when it looks like a host.
    has_domain = bool(rest) and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    path = rest if has_domain else repo
    if re.search(r":[^/]*$", path):
        raise _fail("image_repo", f"{repo!r} has a tag", "give the repository only")
    if has_domain and not _REPO_DOMAIN_RE.match(first):
        raise _fail("image_repo", f"{first!r} in {repo!r} is not a registry host[:port]")
    for component in path.split("/"):
        if not _REPO_COMPONENT_RE.match(component):
            what = (
                f"path component {component!r}"
                if component
                else "an empty path component ('//', or '/' at an end)"
            )
            raise _fail(
                "image_repo",
                f"{repo!r} has {what}, which Docker refuses",
                "path components are lowercase a-z, 0-9, separated by '.', '_', '__' or '-'",
            )
    if len(repo) > 255:
        raise _fail("image_repo", f"{len(repo)} characters; Docker allows at most 255")


def _check_name(option: str, value: object, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not k8s_labels.is_dns1123_subdomain(value):
        raise _fail(
            option,
            f"{value!r} is not a valid Kubernetes object name",
            "use lowercase a-z, 0-9, '-'",
        )


def overlaps(path: str, reserved: str) -> bool:
    """Whether a mount at ``path`` covers ``reserved`` or lies inside it (both normalized)."""
    return (
        path == reserved
        or reserved.startswith(path.rstrip("/") + "/")
        or (path.startswith(reserved + "/"))
    )


def _check_relative_path(option: str, what: str, value: object) -> None:
    """A path inside a volume: relative, without '..' (the API server's own rule)."""
    if not isinstance(value, str) or not value or value.startswith("/"):
        raise _fail(option, f"{what} {_short(value)} must be a relative path")
    if ".." in value.split("/"):
        raise _fail(option, f"{what} {value!r} contains '..'", "it must stay inside the volume")


def _check_env_name(option: str, name: object) -> None:
    if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
        raise _fail(option, f"{name!r} is not a valid environment variable name")
    if name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIXES):
        raise _fail(
            option,
            f"{name!r} is set by the training operator or nemo_run_k8s",
            "choose another name",
        )


@dataclasses.dataclass(kw_only=True)
class KubernetesOptions:
    """Every option of a PyTorchJob launch, checked on construction.

    Attributes:
      namespace: where the PyTorchJob and its pods live.
      image_repo: the registry repository job images are pushed to and pulled
        from, e.g. ``registry.example.com/team/jobs`` (no tag, no digest).
      num_nodes: pods; one Master plus ``num_nodes - 1`` Workers.
      gpus_per_node: ``nvidia.com/gpu`` limit of each pod.
      nproc_per_node: processes per pod (default: ``gpus_per_node``, or 1 without GPUs).
      base_image: the image the job image is built on (default:
        ``nemo-run-k8s/cpu:local``); it needs python3 of this client's minor version.
      code_dir: a directory baked into the job image at /workspace (importable);
        modules under it are imported by reference instead of being pickled.
      cpu, memory: requests = limits per pod (``"8"``, ``"500m"``, ``"64Gi"``).
      shm_size: size of the in-memory ``/dev/shm`` (``None``: the container default).
      volumes: :class:`PVCVolume`, :class:`ConfigMapVolume`, :class:`SecretVolume`.
      env_vars: plain environment variables; never put secrets here.
      secret_env_vars: ``{"ENV": ("secret-name", "key")}``: references to keys of
        Kubernetes Secrets, which become ``secretKeyRef``s, never values in the
        manifest or the image. A str is refused (it may be the secret itself).
      node_selector, tolerations, affinity: pod placement, in Kubernetes' own shape.
      image_pull_secrets: names of Secrets for pulling from ``image_repo``.
      service_account, priority_class: pod service account and PriorityClass.
      labels, annotations: extra metadata on the PyTorchJob and its pod templates.
      restart_policy: per replica: ``OnFailure``, ``Never``, ``Always`` or ``ExitCode``.
      backoff_limit: restarts before the job is marked Failed (not sent with
        ``restart_policy="Never"``: the operator would delete the failed pods at once).
      active_deadline_seconds: wall-clock limit of the whole job.
      ttl_seconds_after_finished: when the finished job (and its logs) is deleted.
      clean_pod_policy: which pods to delete when the job finishes. The default
        ``"None"`` keeps them, so logs and the result stay readable until the TTL.
      queue: Kueue LocalQueue name (label ``kueue.x-k8s.io/queue-name``) and
        ``runPolicy.schedulingPolicy.queue`` for gang scheduling of all nodes.
      kube_context, kubeconfig: which cluster (default: the current context of
        ``$KUBECONFIG`` or ``~/.kube/config``, or the in-cluster service account).
      unschedulable_timeout: seconds a pod may stay Unschedulable before the job
        is reported FAILED; ``None`` waits forever (e.g. when capacity is expected).
    """

    namespace: str = "default"
    image_repo: str | None = None
    num_nodes: int = 1
    gpus_per_node: int = 0
    nproc_per_node: int | None = None
    base_image: str | None = None
    code_dir: str | None = None
    cpu: str | int | float | None = None
    memory: str | None = None
    shm_size: str | None = "16Gi"
    volumes: Sequence[Volume] | None = None
    env_vars: Mapping[str, str] | None = None
    secret_env_vars: Mapping[str, tuple[str, str]] | None = None
    node_selector: Mapping[str, str] | None = None
    tolerations: Sequence[Mapping[str, Any]] | None = None
    affinity: Mapping[str, Any] | None = None
    image_pull_secrets: Sequence[str] | None = None
    service_account: str | None = None
    priority_class: str | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    restart_policy: str = "OnFailure"
    backoff_limit: int = 3
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = 7 * 24 * 3600
    clean_pod_policy: str = "None"
    queue: str | None = None
    kube_context: str | None = None
    kubeconfig: str | None = None
    unschedulable_timeout: float | None = 600.0

    def __post_init__(self) -> None:
        self._validate()

    def resources(self) -> Resources:
        """Pods, processes per pod (default: one per GPU, or 1) and GPUs per pod."""
        nproc = self.nproc_per_node or max(self.gpus_per_node, 1)
        return Resources(self.num_nodes, nproc, self.gpus_per_node)

    def image_spec(self) -> ImageSpec:
        return ImageSpec(self.base_image or DEFAULT_BASE_IMAGE, self.code_dir)

    def secret_refs(self) -> dict[str, tuple[str, str]]:
        """``secret_env_vars`` as ``{ENV: (secret name, key)}``."""
        return {env: (ref[0], ref[1]) for env, ref in (self.secret_env_vars or {}).items()}

    def _validate(self) -> None:
        if not isinstance(self.namespace, str) or not k8s_labels.is_dns1123_label(self.namespace):
            raise _fail("namespace", f"{self.namespace!r} is not a valid namespace name")
        if self.image_repo is None:
            raise _fail(
                "image_repo",
                "is required",
                "give the registry repository the cluster pulls job images from, "
                "e.g. image_repo='registry.example.com/team/jobs'",
            )
        _check_image_repo(self.image_repo)
        _check_int("num_nodes", self.num_nodes, 1)
        _check_int("gpus_per_node", self.gpus_per_node, 0)
        _check_int("nproc_per_node", self.nproc_per_node, 1, allow_none=True)
        if self.gpus_per_node and self.resources().nproc_per_node > self.gpus_per_node:
            raise _fail(
                "nproc_per_node",
                f"{self.nproc_per_node} processes on {self.gpus_per_node} GPUs per node",
                "each process needs its own GPU: lower nproc_per_node or raise gpus_per_node",
            )
        if self.base_image is not None and not isinstance(self.base_image, str):
            raise _fail("base_image", f"expected an image reference, got {self.base_image!r}")
        if self.code_dir is not None:
            if not isinstance(self.code_dir, (str, os.PathLike)):
                raise _fail("code_dir", f"expected a directory path, got {self.code_dir!r}")
            self.code_dir = os.path.abspath(os.fspath(self.code_dir))
        self.cpu = _check_quantity("cpu", self.cpu, "8")
        self.memory = _check_quantity("memory", self.memory, "64Gi")
        self.shm_size = _check_quantity("shm_size", self.shm_size, "16Gi")
        self._validate_volumes()
        env = _check_str_map("env_vars", self.env_vars)
        for name, value in env.items():
            _check_env_name("env_vars", name)
            if "\0" in value:
                raise _fail("env_vars", f"the value of {name} contains a NUL character")
        self._validate_secret_env(env)
        for key, value in _check_str_map("node_selector", self.node_selector, True).items():
            if not k8s_labels.is_label_value(value):
                raise _fail("node_selector", f"{_short(value)} (for {key!r}) is not a label value")
        self._validate_tolerations()
        if self.affinity is not None and (
            not isinstance(self.affinity, Mapping) or not set(self.affinity) <= _AFFINITY_KEYS
        ):
            raise _fail("affinity", f"expected a dict with keys among {sorted(_AFFINITY_KEYS)}")
        if isinstance(self.image_pull_secrets, str):
            raise _fail("image_pull_secrets", "expected a list of Secret names, got a str")
        for secret in self.image_pull_secrets or ():
            _check_name("image_pull_secrets", secret, allow_none=False)
        _check_name("service_account", self.service_account)
        _check_name("priority_class", self.priority_class)
        for key, value in _check_str_map("labels", self.labels, check_keys=True).items():
            if not k8s_labels.is_label_value(value):
                raise _fail(
                    "labels",
                    f"{_short(value)} (for {key!r}) is not a valid label value",
                    "at most 63 characters of A-Z, a-z, 0-9, '-', '_', '.', "
                    "alphanumeric at both ends",
                )
        annotations = _check_str_map("annotations", self.annotations, check_keys=True)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
        if size > ANNOTATIONS_MAX_BYTES:
            raise _fail(
                "annotations",
                f"{size:,} bytes in all; the API server accepts at most "
                f"{ANNOTATIONS_MAX_BYTES:,} (256 KiB)",
                "keep large data in a ConfigMap and mount it (ConfigMapVolume)",
            )
        if self.restart_policy not in RESTART_POLICIES:
            raise _fail("restart_policy", f"{self.restart_policy!r}", f"one of {RESTART_POLICIES}")
        if self.clean_pod_policy not in CLEAN_POD_POLICIES:
            raise _fail(
                "clean_pod_policy", f"{self.clean_pod_policy!r}", f"one of {CLEAN_POD_POLICIES}"
            )
        _check_int("backoff_limit", self.backoff_limit, 0)
        _check_int("active_deadline_seconds", self.active_deadline_seconds, 1, allow_none=True)
        _check_int("ttl_seconds_after_finished", self.ttl_seconds_after_finished, 0, True)
        if self.queue is not None and not (
            isinstance(self.queue, str)
            and k8s_labels.is_dns1123_subdomain(self.queue)
            and k8s_labels.is_label_value(self.queue)  # it is also the value of a label
        ):
            raise _fail(
                "queue",
                f"{_short(self.queue)} is not a valid LocalQueue name",
                "lowercase a-z, 0-9, '-', '.', at most 63 characters",
            )
        for option in ("kube_context", "kubeconfig"):
            value = getattr(self, option)
            if value is not None and (not isinstance(value, str) or not value):
                raise _fail(option, f"expected a non-empty str, got {value!r}")
        timeout = self.unschedulable_timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
        ):
            raise _fail("unschedulable_timeout", f"expected seconds >= 0 or None, got {timeout!r}")

    def _validate_volumes(self) -> None:
        if self.volumes is None:
            return
        if not isinstance(self.volumes, Sequence) or isinstance(self.volumes, str):
            raise _fail("volumes", "expected a list of PVCVolume/ConfigMapVolume/SecretVolume")
        seen: set[str] = set()
        for volume in self.volumes:
            if not isinstance(volume, (PVCVolume, ConfigMapVolume, SecretVolume)):
                raise _fail(
                    "volumes",
                    f"{volume!r} is not a volume",
                    "use run.PVCVolume, run.ConfigMapVolume or run.SecretVolume",
                )
            source = (
                volume.claim_name
                if isinstance(volume, PVCVolume)
                else volume.name
                if isinstance(volume, ConfigMapVolume)
                else volume.secret_name
            )
            _check_name("volumes", source, allow_none=False)
            path = volume.mount_path
            if not isinstance(path, str) or not path.startswith("/"):
                raise _fail("volumes", f"mount_path {path!r} is not an absolute path")
            if ".." in path.split("/"):
                raise _fail("volumes", f"mount_path {path!r} contains '..'", "write it without")
            path = posixpath.normpath(path)
            if path in seen:
                raise _fail("volumes", f"two volumes are mounted at {path!r}", "keep one")
            seen.add(path)
            for reserved, what in self._reserved_paths().items():
                if overlaps(path, reserved):
                    raise _fail(
                        "volumes",
                        f"mount_path {volume.mount_path!r} would hide {reserved} ({what})",
                        "mount it somewhere else, e.g. under /mnt",
                    )
            if isinstance(volume, PVCVolume) and volume.sub_path is not None:
                _check_relative_path("volumes", "sub_path", volume.sub_path)
            if not isinstance(volume, PVCVolume) and volume.items is not None:
                if not isinstance(volume.items, Mapping):
                    raise _fail("volumes", "items: expected a dict {key: file name}")
                for key, file in volume.items.items():
                    if not isinstance(key, str) or not _SECRET_KEY_RE.match(key):
                        raise _fail("volumes", f"items: {_short(key)} is not a valid key")
                    _check_relative_path("volumes", f"items[{key!r}]", file)

    def _reserved_paths(self) -> dict[str, str]:
        """Paths in the container that a volume must not cover, with what they hold."""
        reserved = {IMAGE_BUNDLE_ROOT: "the job bundles", "/dev/shm": "shared memory"}
        if self.code_dir is not None:
            reserved[CODE_DIR_IN_IMAGE] = "the code of code_dir"
        return reserved

    def _validate_secret_env(self, env: Mapping[str, str]) -> None:
        """Each value must be a ``(Secret name, key)`` pair: a reference, never the secret.

        Nothing here prints a value: where a reference belongs, a user may have
        put the secret itself. A str is refused whatever it looks like: a token
        such as ``hf-abc/xyz`` reads exactly like ``secret-name/key``, so no rule on
        the text can tell them apart.
        """
        if self.secret_env_vars is None:
            return
        if not isinstance(self.secret_env_vars, Mapping):
            raise _fail("secret_env_vars", "expected a dict {ENV: (secret name, key)}")
        refs = {}
        for name, ref in self.secret_env_vars.items():
            _check_env_name("secret_env_vars", name)
            if name in env:
                raise _fail("secret_env_vars", f"{name!r} is also in env_vars", "keep one")
            hidden = f"{name}=<{type(ref).__name__}, value not shown>"
            if isinstance(ref, (str, bytes)):
                raise _fail(
                    "secret_env_vars",
                    f"{hidden} is a {type(ref).__name__} where a reference to a Kubernetes "
                    "Secret belongs (a raw value would be written into the manifest)",
                    f"create a Secret (kubectl create secret generic NAME --from-literal="
                    f"KEY=...) and write {name}=('NAME', 'KEY')",
                )
            if not isinstance(ref, (tuple, list)) or len(ref) != 2:
                raise _fail(
                    "secret_env_vars",
                    f"{hidden} does not name a Secret key",
                    f"write {name}=('secret-name', 'key')",
                )
            secret, key = ref
            if not isinstance(secret, str) or not k8s_labels.is_dns1123_subdomain(secret):
                raise _fail(
                    "secret_env_vars",
                    f"{name}: the Secret name (not shown) is not a valid Kubernetes object name",
                    "a Secret name is lowercase a-z, 0-9, '-', '.', at most 253 characters",
                )
            if not isinstance(key, str) or len(key) > 253 or not _SECRET_KEY_RE.match(key):
                raise _fail(
                    "secret_env_vars",
                    f"{name}: the key (not shown) is not a valid Secret key",
                    "a key is a-z, A-Z, 0-9, '-', '_', '.', at most 253 characters",
                )
            refs[name] = (secret, key)
        self.secret_env_vars = refs

    def _validate_tolerations(self) -> None:
        if self.tolerations is None:
            return
        if not isinstance(self.tolerations, Sequence) or isinstance(self.tolerations, str):
            raise _fail("tolerations", "expected a list of dicts in Kubernetes' Toleration shape")
        for toleration in self.tolerations:
            if not isinstance(toleration, Mapping) or not set(toleration) <= _TOLERATION_KEYS:
                raise _fail(
                    "tolerations",
                    f"{toleration!r} is not a Toleration",
                    f"use keys among {sorted(_TOLERATION_KEYS)}",
                )
            if toleration.get("operator", "Equal") not in ("Equal", "Exists"):
                raise _fail(
                    "tolerations", f"operator {toleration['operator']!r}", "Equal or Exists"
                )
            if toleration.get("effect", "") not in (
                "",
                "NoSchedule",
                "PreferNoSchedule",
                "NoExecute",
            ):
                raise _fail("tolerations", f"effect {toleration['effect']!r} is not known")
