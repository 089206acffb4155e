"""The pure half of the DockerExecutor: option checks and what ``docker run`` gets per node.

No docker import and nothing written here (the only reads are the submitting
user's uid and whether the NVIDIA hook is on PATH): the dry run is built from
these functions, and ``launch`` sends what they return (with the image and
secret values filled in).
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
from typing import Any

from nemo_run_k8s.config.script import _check_env
from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.labels import LABEL_PREFIX, job_labels
from nemo_run_k8s.paths import IMAGE_BUNDLE_ROOT, JobPaths
from nemo_run_k8s.runtime.contract import node_env
from nemo_run_k8s.spec import JobIdentity

IMAGE_PLACEHOLDER = "nemo-run-k8s/job:<computed at build>"
ENV_IMAGE_PLACEHOLDER = "nemo-run-k8s/env:<computed at build>"
OUTPUT_MOUNT = "/nemo_run_k8s/output"
NODE_LABEL = f"{LABEL_PREFIX}/node-rank"
SECRET_MASK = "<secret: set at run time>"
_RESERVED_ENV = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PYTHONUNBUFFERED"}
_RESERVED_PREFIXES = ("PET_", "NEMO_RUN_K8S_", "TORCHELASTIC_")
#: The most containers, and GPUs, one job asks of one host: more is a typo, and the dry
#: run would list every GPU id (10**18 of them would exhaust memory before any check).
MAX_NODES = 1024
MAX_GPUS = 1024
MAX_NPROC_PER_NODE = 1024
#: Where the job image keeps the code of ``code_dir`` (see resources/job.Dockerfile).
CODE_DIR_IN_IMAGE = "/workspace"
_SHM_SIZE = re.compile(r"^([0-9]+)\s*([bkmgBKMG]?)(?:i|iB|B)?$")  # 8g, 8G, 8Gi, 8GB
#: ``network=``: "host" shares the host's network (no network to create; starting a container
#: there is several times cheaper for Docker than on a bridge); "job" gives the job a bridge
#: network of its own, each node its own ports and address.
NETWORKS = ("host", "job")
#: MASTER_PORT on a network of the job's own (no other job listens there).
JOB_NETWORK_PORT = 29500


# ---------------------------------------------------------------------- pure builders


def network_name(job_id: str) -> str:
    return f"{job_id}-net"


def container_name(job_id: str, node: int) -> str:
    return f"{job_id}-node-{node}"


def container_spec(
    executor: Any, bundle_path: str, job: JobIdentity, node: int, master_port: int
) -> dict[str, Any]:
    """What ``docker run`` gets for one node (the image is filled in at launch).

    On the host's network every node's name resolves to 127.0.0.1 in every
    container (``/etc/hosts``), so ``MASTER_ADDR`` names node 0 as on a network
    of the job's own, where Docker's DNS resolves it.
    """
    name = container_name(job.job_id, node)
    master = container_name(job.job_id, 0)
    nproc = executor.resources().nproc_per_node
    env = node_env(node, master, master_port, executor.num_nodes, nproc)
    env.update(executor.env_vars or {})
    env.update({key: SECRET_MASK for key in executor.secret_env_vars or {}})
    command = [bundle_path]
    mounts: list[dict[str, Any]] = []
    if node == 0:  # rank 0 writes the outcome; the host reads it for job.result()
        command += ["--output", OUTPUT_MOUNT]
        mounts.append({"source": str(JobPaths(job.job_dir).output), "target": OUTPUT_MOUNT})
    for volume in executor.volumes or []:
        host, target, *mode = volume.split(":")
        mounts.append({"source": host, "target": target, "read_only": mode == ["ro"]})
    spec: dict[str, Any] = {
        "kind": "container",
        "node": node,
        "name": name,
        "image": IMAGE_PLACEHOLDER,
        "command": command,
        "hostname": name,
        "network": "host" if executor.network == "host" else network_name(job.job_id),
        "labels": {**job_labels(job.job_id, job.name, job.experiment), NODE_LABEL: str(node)},
        "env": env,
        "mounts": mounts,
        "shm_size": executor.shm_size,
        # docker-init as PID 1 passes a stop's SIGTERM on: a process that is PID 1 itself
        # ignores it until it has installed a handler, and the stop then waits its whole grace.
        "init": True,
    }
    if executor.network == "host":
        spec["extra_hosts"] = {
            container_name(job.job_id, n): "127.0.0.1" for n in range(executor.num_nodes)
        }
    if os.getuid() != 0:  # files written to the host stay the submitting user's
        spec["user"] = f"{os.getuid()}:{os.getgid()}"
        env.setdefault("HOME", "/tmp")
    if executor.gpus_per_node:
        first = node * executor.gpus_per_node
        ids = [str(i) for i in range(first, first + executor.gpus_per_node)]
        spec["gpus"] = {"driver": "nvidia", "device_ids": ids}
    return spec


def container_config(doc: dict[str, Any], image: str, env: dict[str, str]) -> dict[str, Any]:
    """The Engine API body creating the container of ``doc`` (a :func:`container_spec`).

    What ``docker run --network <net> --add-host ... --init --shm-size ... --mount ...``
    sends; ``image`` and ``env`` (secret values included) are filled in at launch.
    """
    host_config: dict[str, Any] = {
        "Mounts": [
            {
                "Target": m["target"],
                "Source": m["source"],
                "Type": "bind",
                "ReadOnly": bool(m.get("read_only", False)),
            }
            for m in doc["mounts"]
        ],
        "ShmSize": size_bytes(doc["shm_size"]),
        "Init": doc["init"],
        "NetworkMode": doc["network"],
    }
    if "extra_hosts" in doc:
        host_config["ExtraHosts"] = [f"{name}:{ip}" for name, ip in doc["extra_hosts"].items()]
    if "gpus" in doc:
        host_config["DeviceRequests"] = [
            {
                "Driver": doc["gpus"]["driver"],
                "Count": 0,
                "DeviceIDs": doc["gpus"]["device_ids"],
                "Capabilities": [["gpu"]],
                "Options": {},
            }
        ]
    config: dict[str, Any] = {
        "Image": image,
        "Cmd": doc["command"],
        "Hostname": doc["hostname"],
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": doc["labels"],
        "HostConfig": host_config,
    }
    if doc["network"] != "host":  # aliases exist on user-defined networks only
        endpoint = {"Aliases": [doc["name"]]}
        config["NetworkingConfig"] = {"EndpointsConfig": {doc["network"]: endpoint}}
    if doc.get("user"):
        config["User"] = doc["user"]
    return config


def size_bytes(size: str) -> int:
    """A size as :func:`checked_shm_size` keeps it (``"8g"``) in bytes."""
    digits = size.rstrip("bkmg")
    return int(digits) * {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[size[len(digits) :]]


def check_gpus(info: dict[str, Any], num_nodes: int, per_node: int, host_gpus: int | None) -> None:
    """Refuses a GPU request the engine cannot meet (Docker would fail only at start)."""
    asked = f"DockerExecutor(num_nodes={num_nodes}, gpus_per_node={per_node})"
    runtimes = sorted(info.get("Runtimes") or {})
    if "nvidia" not in runtimes and shutil.which("nvidia-container-runtime-hook") is None:
        raise InvalidOptionError(
            f"{asked} asks for GPUs, but this Docker engine has no NVIDIA runtime (its "
            f"runtimes: {', '.join(runtimes) or 'none'}). Install the NVIDIA Container Toolkit "
            "and restart dockerd, or use gpus_per_node=0 to run on CPUs. Nothing was created."
        )
    needed = num_nodes * per_node
    if host_gpus is not None and needed > host_gpus:
        raise InvalidOptionError(
            f"{asked} asks for {needed} GPUs, but this host has {host_gpus} (nvidia-smi -L). "
            "Lower num_nodes or gpus_per_node. Nothing was created."
        )


# ---------------------------------------------------------------------- option checks


def invalid(option: str, problem: str) -> InvalidOptionError:
    return InvalidOptionError(f"DockerExecutor option {option}: {problem}")


def check_int(option: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(option, f"expected an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise invalid(option, f"{value} is more than one host can give a job (at most {maximum})")


def checked_env(option: str, env: Any) -> dict[str, str]:
    try:
        checked = _check_env(env or {})
    except ValueError as err:
        raise invalid(option, str(err)) from None
    for key in checked:
        if key in _RESERVED_ENV or key.startswith(_RESERVED_PREFIXES):
            raise invalid(option, f"{key} is set by the executor for every node; remove it")
    return checked


def checked_secret_env(env: Any) -> dict[str, str]:
    """Like :func:`checked_env`, for secrets: no message ever shows a value."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise invalid("secret_env_vars", f"expected a dict of str to str, got {type(env).__name__}")
    for key, value in env.items():
        if not isinstance(value, str):
            raise invalid(
                "secret_env_vars",
                f"the value of {key!r} is a {type(value).__name__} (not shown), not a str; "
                "pass the secret as a str, e.g. os.environ['NAME'] or data.decode()",
            )
    return checked_env("secret_env_vars", env)


def checked_volume(volume: Any) -> str:
    parts = volume.split(":") if isinstance(volume, str) else []
    if len(parts) not in (2, 3) or not all(parts[:2]) or parts[2:] not in ([], ["ro"], ["rw"]):
        raise invalid("volumes", f"{volume!r} is not 'HOST_PATH:CONTAINER_PATH[:ro|rw]'")
    host, target = parts[0], parts[1]
    if not target.startswith("/"):
        raise invalid("volumes", f"the container path in {volume!r} must be absolute")
    if ".." in target.split("/"):
        raise invalid("volumes", f"the container path in {volume!r} contains '..'")
    target = posixpath.normpath(target)
    return ":".join([os.path.abspath(os.path.expanduser(host)), target, *parts[2:]])


def check_volume_targets(volumes: list[str], code_dir: str | None) -> None:
    """Refuses two volumes at one container path, and one over what the job needs."""
    reserved = {
        IMAGE_BUNDLE_ROOT: "the job bundles",
        OUTPUT_MOUNT: "where node 0 writes the result",
        "/dev/shm": "shared memory (set shm_size instead)",
    }
    if code_dir is not None:
        reserved[CODE_DIR_IN_IMAGE] = "the code of code_dir"
    seen: dict[str, str] = {}
    for volume in volumes:
        target = volume.split(":")[1]
        if target in seen:
            raise invalid("volumes", f"{seen[target]!r} and {volume!r} both mount at {target}")
        seen[target] = volume
        for path, what in reserved.items():
            inside_or_over = path.startswith(target.rstrip("/") + "/") or target.startswith(
                path + "/"
            )
            if target == path or inside_or_over:
                raise invalid(
                    "volumes",
                    f"{volume!r} would cover {path} ({what}); mount it elsewhere, e.g. /mnt/data",
                )


def checked_shm_size(value: Any) -> str:
    """``8g``, ``8G``, ``8Gi`` or ``8GB`` as Docker's ``8g``."""
    size = _SHM_SIZE.match(str(value))
    if size is None:
        raise invalid("shm_size", f"{value!r} is not a size like '8g', '8Gi' or '512m'")
    return size.group(1) + (size.group(2) or "").lower()
