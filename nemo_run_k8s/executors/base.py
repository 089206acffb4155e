"""The small interface every backend implements.

A backend turns a bundle into a *plan* (pure, no I/O: what would be built and
launched), launches a plan, and afterwards answers questions about the job by
its *handle* alone: a JSON-serializable dict stored in the job record. Because
``state``/``logs``/``cancel``/``outcome`` take only the handle, a fresh process
can reattach to any job from its record (``run.Job.from_id``).

Backend modules are imported lazily (see :func:`backend_class`), so
``import nemo_run_k8s`` never imports docker or kubernetes.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import functools
import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from nemo_run_k8s.bundle.files import Bundle


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
class JobSpec:
    """Identity of one job, fixed before anything is launched.

    ``job_dir`` is a host directory owned by the job record: backends that can
    write to the host keep logs and rank 0's outcome there. ``image``, when set,
    is a job image that already contains the bundle: image-based backends use it
    instead of building one (an experiment builds one image for all its jobs).
    """

    job_id: str
    name: str
    job_dir: Path
    experiment: str | None = None
    image: str | None = None  # a job image already holding this bundle (experiments share one)


@dataclasses.dataclass
class Plan:
    """What a backend would do for one job: the dry-run value.

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


Handle = dict[str, Any]


def node_env(node: int, master: str, port: int, num_nodes: int, nproc: int) -> dict[str, str]:
    """The environment the Kubeflow operator sets on PyTorchJob pods, for ``node``.

    The local and Docker executors give their processes and containers the same
    variables, so one entrypoint runs unchanged in all three places.
    """
    env = {
        "MASTER_ADDR": master,
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(num_nodes * nproc),
        "RANK": str(node),
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": str(port),
        "PET_NNODES": str(num_nodes),
        "PET_NODE_RANK": str(node),
        "PET_NPROC_PER_NODE": str(nproc),
        "PYTHONUNBUFFERED": "1",
    }
    if nproc > 1:  # torchrun prefixes every worker line with its node and global rank
        env["PET_TEE"] = "3"
        env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = f"[node{node} rank${{rank}}] "
    return env


class Executor(abc.ABC):
    """Where and how a job runs. One subclass (and one module) per backend."""

    kind: ClassVar[str]
    #: The longest pause between two state reads while waiting for a job; a
    #: backend whose state is cheap to read (a local file) polls more often.
    poll_interval: ClassVar[float] = 0.5

    @abc.abstractmethod
    def resources(self) -> Resources:
        """The processes and GPUs one job of this executor asks for."""

    def preflight(self) -> None:
        """Checks that need the backend (daemon, cluster) but start nothing.

        Raises :class:`~nemo_run_k8s.errors.InvalidOptionError` for requests the
        backend cannot meet (e.g. more GPUs than the host has). Default: none.
        """
        return None

    @abc.abstractmethod
    def plan(self, bundle: Bundle, job: JobSpec) -> Plan:
        """What would be built and launched. Pure: no I/O, no daemon or cluster."""

    def _plan(
        self,
        bundle: Bundle,
        job: JobSpec,
        documents: list[dict[str, Any]],
        details: dict[str, Any] | None = None,
    ) -> Plan:
        """A :class:`Plan` of this executor for ``job``, with the bundle's manifest."""
        return Plan(
            executor=self.kind,
            job_id=job.job_id,
            name=job.name,
            manifest=bundle.manifest,
            flattened_config=bundle.manifest.get("flattened_config", ""),
            documents=documents,
            details=details or {},
        )

    @abc.abstractmethod
    def launch(self, plan: Plan, bundle: Bundle, job: JobSpec) -> Handle:
        """Starts the job and returns at once with its handle (JSON-serializable)."""

    # Operations by handle: classmethods, so reattaching needs no executor object.

    @classmethod
    @abc.abstractmethod
    def state(cls, handle: Handle) -> JobState:
        """The job's state, read from the backend."""

    @classmethod
    @abc.abstractmethod
    def logs(cls, handle: Handle, follow: bool = False) -> Iterator[str]:
        """The job's log lines (without trailing newlines); ``follow`` waits for more."""

    @classmethod
    @abc.abstractmethod
    def cancel(cls, handle: Handle) -> None:
        """Stops the job and removes what it holds (containers, pods, networks)."""

    @classmethod
    def reason(cls, handle: Handle) -> str:
        """Why the job failed or is stuck, in words, when the backend knows ('' otherwise)."""
        return ""

    @classmethod
    def outcome(cls, handle: Handle) -> tuple[str, Any] | None:
        """Rank 0's ``("success", value)`` or ``("error", traceback)``, if written."""
        from nemo_run_k8s.bundle.files import read_outcome

        output_dir = handle.get("output_dir")
        return read_outcome(Path(output_dir)) if output_dir else None


_BACKENDS = {
    "local": "nemo_run_k8s.executors.local.executor:LocalExecutor",
    "docker": "nemo_run_k8s.executors.docker.executor:DockerExecutor",
    "k8s": "nemo_run_k8s.executors.kubernetes.executor:KubernetesExecutor",
}


def reject_unknown_options(cls: type) -> type:
    """Turns a misspelt executor option into an InvalidOptionError that lists the right ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    init = cls.__dict__["__init__"]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            import difflib

            from nemo_run_k8s.errors import InvalidOptionError

            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, names, n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise InvalidOptionError(
                f"{cls.__name__} has no option {', '.join(hints)}; its options are: "
                + ", ".join(names)
            )
        init(self, *args, **kwargs)

    setattr(cls, "__init__", __init__)  # noqa: B010
    return cls


def backend_class(kind: str) -> type[Executor]:
    """The executor class for ``kind``, importing its module only now."""
    try:
        module_name, _, attr = _BACKENDS[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown executor kind {kind!r}; known: {sorted(_BACKENDS)}") from None
    return getattr(importlib.import_module(module_name), attr)
