"""The core types every room shares: a job's state, resources, identity and plan.

No backend, bundle or image imports here: ``bundle/``, ``executors/`` and the
API all depend on this module, never the other way round.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class JobState(str, enum.Enum):
    """Where a job is in its life."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one job asks for: ``num_nodes`` x ``nproc_per_node`` processes."""

    num_nodes: int = 1
    nproc_per_node: int = 1
    gpus_per_node: int = 0

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.nproc_per_node


@dataclasses.dataclass(frozen=True)
class JobIdentity:
    """Who a job is, fixed before anything is launched.

    ``job_dir`` is a host directory owned by the job record (see
    :class:`~nemo_run_k8s.paths.JobPaths`): backends that can write to the host
    keep logs and rank 0's outcome there. ``image``, when set, is a job image
    that already contains the bundle: image-based backends use it instead of
    building one (an experiment builds one image for all its jobs).
    """

    job_id: str
    name: str
    job_dir: Path
    experiment: str | None = None
    image: str | None = None


#: The base of job images when an executor names none: the local CPU runtime image.
DEFAULT_BASE_IMAGE = "nemo-run-k8s/cpu:local"


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What a job image is made of, besides its bundles: a base image and the user's code."""

    base_image: str
    code_dir: str | None = None


#: What a backend needs to find a job again: JSON-serializable, stored in the job record.
Handle = dict[str, Any]


@dataclasses.dataclass
class Plan:
    """What a backend would do for one job: the dry-run value, and what ``submit`` launches.

    ``documents`` are the exact objects that will be sent (PyTorchJob dicts,
    container specs); ``details`` holds extra, human-facing items (Dockerfile
    text, image tag). ``str(plan)`` is a YAML stream: comment lines describing
    the job, then one document per object, so a Kubernetes plan can be piped to
    ``kubectl apply -f -`` unchanged.
    """

    executor: str
    job_id: str
    name: str
    manifest: Mapping[str, Any]
    flattened_config: str
    documents: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        import yaml

        header = [
            f"# nemo-run-k8s dry run: job {self.name!r} (id {self.job_id}) on {self.executor}",
            f"# bundle sha256: {self.manifest.get('sha256', '?')}",
            f"# task: {self.manifest.get('task_kind', '?')} {self.manifest.get('target', '')}",
        ]
        if self.flattened_config:
            header.append("# config:")
            header += [f"#   {line}" for line in self.flattened_config.splitlines()]
        for key, value in self.details.items():
            text = str(value)
            if "\n" in text:
                header.append(f"# {key}:")
                header += [f"#   {line}" for line in text.rstrip().splitlines()]
            else:
                header.append(f"# {key}: {text}")
        body = "".join(
            "---\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
            for doc in self.documents
        )
        return "\n".join(header) + "\n" + body

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class ReplicaStatus:
    """One node of a job as its backend sees it now (a pod on Kubernetes).

    ``replica`` is ``master`` or ``worker`` and ``index`` counts within it, as in
    ``Job.logs(replica=..., index=...)``; ``phase`` is the pod phase (``Pending``,
    ``Running``, ``Succeeded``, ``Failed``) or ``not created``; ``detail`` says why
    in words (``pulling image ...``, ``unschedulable: ...``).
    """

    replica: str
    index: int
    phase: str
    detail: str = ""
    restarts: int = 0
    pod: str = ""

    @property
    def label(self) -> str:
        """How its log lines are prefixed: ``master0``, ``worker2``."""
        return f"{self.replica}{self.index}"


@dataclasses.dataclass(frozen=True)
class JobDescription:
    """A job's state with what its backend can say about each node (``run.Job.describe``)."""

    state: JobState
    reason: str = ""
    replicas: tuple[ReplicaStatus, ...] = ()
    warnings: tuple[str, ...] = ()
