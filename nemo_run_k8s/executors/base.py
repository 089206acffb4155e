"""The small interface every backend implements.

A backend turns a bundle into a *plan* (pure, no I/O: what would be built and
launched), launches a plan, and afterwards answers questions about the job by
its *handle* alone: a JSON-serializable dict stored in the job record. Because
``state``/``logs``/``cancel``/``outcome`` take only the handle, a fresh process
can reattach to any job from its record (``run.Job.from_id``).

What a backend can do beyond the interface is declared, not probed:
:meth:`Executor.image_spec` says whether its jobs run from a job image (and on
which base, with which code directory). Backend modules are imported lazily
(see :func:`backend_class`), so ``import nemo_run_k8s`` never imports docker or
kubernetes, and nothing outside ``executors/<backend>/`` imports a backend's
modules except through that registry.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nemo_run_k8s.errors import InvalidOptionError
from nemo_run_k8s.spec import (
    Handle,
    ImageSpec,
    JobDescription,
    JobIdentity,
    JobState,
    Plan,
    Resources,
)

if TYPE_CHECKING:
    from nemo_run_k8s.bundle.files import Bundle


#: The longest log line a backend yields in one piece; a longer one comes in pieces, so
#: reading a log never holds more than this of it (``Executor.logs``).
MAX_LOG_LINE = 1 << 20


class LineBuffer:
    """Cuts a stream of output chunks into lines, holding at most one (partial) line.

    The one line splitter of every backend's logs: a line longer than
    :data:`MAX_LOG_LINE` bytes (a progress bar redrawn with ``\\r`` for hours)
    comes out in pieces of that size. Chunks are kept as a list until a line
    ends, so many small chunks cost linear, not quadratic, time.
    """

    def __init__(self, universal_newlines: bool = False) -> None:
        #: Also end lines at ``\\r`` and ``\\r\\n``, as Python's text files do.
        self.universal_newlines = universal_newlines
        self._parts: list[bytes] = []
        self._size = 0
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes (without their line ends)."""
        if not chunk:
            return []
        if self.universal_newlines:
            if self._after_cr and chunk.startswith(b"\n"):
                chunk = chunk[1:]  # the \n of a \r\n cut between two chunks
            self._after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, tail = chunk.split(b"\n")
        lines: list[bytes] = []
        if complete:
            complete[0] = b"".join([*self._parts, complete[0]])
            self._parts, self._size = [], 0
            for line in complete:
                lines += [line[i : i + MAX_LOG_LINE] for i in range(0, len(line), MAX_LOG_LINE)]
                if not line:
                    lines.append(b"")
        if tail:
            self._parts.append(tail)
            self._size += len(tail)
            if self._size >= MAX_LOG_LINE:
                held = b"".join(self._parts)
                cut = len(held) - len(held) % MAX_LOG_LINE
                lines += [held[i : i + MAX_LOG_LINE] for i in range(0, cut, MAX_LOG_LINE)]
                self._parts = [held[cut:]] if cut < len(held) else []
                self._size = len(held) - cut
        return lines

    def rest(self) -> bytes:
        """What is held of a line that has not ended (b"" when nothing is)."""
        held = b"".join(self._parts)
        self._parts, self._size = [], 0
        return held


class Executor(abc.ABC):
    """Where and how a job runs. One subclass (and one module) per backend."""

    kind: ClassVar[str]
    #: The longest pause between two state reads while waiting for a job; a
    #: backend whose state is cheap to read (a local file) polls more often.
    poll_interval: ClassVar[float] = 0.5

    @abc.abstractmethod
    def resources(self) -> Resources:
        """The processes and GPUs one job of this executor asks for."""

    def image_spec(self) -> ImageSpec | None:
        """The base image and code directory of this executor's job images.

        None for a backend whose jobs run without an image (the local one).
        """
        return None

    def code_dirs(self) -> tuple[str, ...]:
        """Directories baked into the job image: modules under them travel by reference."""
        spec = self.image_spec()
        return (spec.code_dir,) if spec is not None and spec.code_dir else ()

    def check_backend(self) -> None:
        """Checks that need the backend (daemon, cluster) but start nothing.

        Raises :class:`~nemo_run_k8s.errors.InvalidOptionError` for requests the
        backend cannot meet (e.g. more GPUs than the host has). Default: none.
        """
        return None

    @abc.abstractmethod
    def plan(self, bundle: Bundle, job: JobIdentity) -> Plan:
        """What would be built and launched. Pure: no I/O, no daemon or cluster."""

    def _plan(
        self,
        bundle: Bundle,
        job: JobIdentity,
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
    def launch(self, plan: Plan, bundle: Bundle, job: JobIdentity) -> Handle:
        """Starts the job and returns at once with its handle (JSON-serializable)."""

    # Operations by handle: classmethods, so reattaching needs no executor object.

    @classmethod
    @abc.abstractmethod
    def state(cls, handle: Handle) -> JobState:
        """The job's state, read from the backend."""

    @classmethod
    @abc.abstractmethod
    def logs(
        cls,
        handle: Handle,
        follow: bool = False,
        *,
        replica: str | None = None,
        index: int | None = None,
    ) -> Iterator[str]:
        """The job's log lines (without trailing newlines); ``follow`` waits for more.

        Every node's lines, merged as they are written, unless ``replica``
        (``"master"`` or ``"worker"``) and ``index`` pick some: see :func:`select_nodes`.
        """

    @classmethod
    @abc.abstractmethod
    def cancel(cls, handle: Handle) -> None:
        """Stops the job and removes what it holds (containers, pods, networks)."""

    @classmethod
    def settle(cls, handle: Handle) -> None:
        """Tidies what a finished job may still hold; called at each look at a finished job.

        Its recorded state is final and not read again, but a supervisor that
        died at the very end may have left something (a Docker network). Must
        be cheap when there is nothing to do. Default: nothing.
        """
        return None

    @classmethod
    def reason(cls, handle: Handle) -> str:
        """Why the job failed or is stuck, in words, when the backend knows ('' otherwise)."""
        return ""

    @classmethod
    def describe(cls, handle: Handle) -> JobDescription:
        """The state with each node's status and recent warnings, where the backend has them.

        The default knows only the state and its reason; Kubernetes adds each pod.
        """
        state = cls.state(handle)
        reason = cls.reason(handle) if state in (JobState.PENDING, JobState.FAILED) else ""
        return JobDescription(state, reason)

    @classmethod
    def outcome(cls, handle: Handle) -> tuple[str, Any] | None:
        """Rank 0's ``("success", value)`` or ``("error", traceback)``, if written."""
        from nemo_run_k8s.bundle.outcome import read_outcome

        output_dir = handle.get("output_dir")
        return read_outcome(Path(output_dir)) if output_dir else None

    @classmethod
    def missing_outcome(cls, handle: Handle) -> str:
        """Says where the outcome of a finished job was looked for, when :meth:`outcome` is None."""
        from nemo_run_k8s.paths import OUTCOME_FILE

        where = Path(handle.get("output_dir", "?")) / OUTCOME_FILE
        return f"{where} does not exist (removed after the job ended?)"


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


def select_nodes(num_nodes: int, replica: str | None, index: int | None) -> list[int]:
    """The nodes ``replica``/``index`` pick, numbered as the job numbers them.

    Node 0 is the master (``replica="master", index=0``) and node ``i + 1`` is
    worker ``i``, as in a PyTorchJob, where the master has node rank 0. No
    ``replica`` means every node; a ``replica`` without ``index``, all of that kind.
    """
    workers = num_nodes - 1
    if replica is None:
        if index is not None:
            raise InvalidOptionError("index= needs replica= ('master' or 'worker')")
        return list(range(num_nodes))
    if replica not in ("master", "worker"):
        raise InvalidOptionError(f"replica must be 'master' or 'worker', got {replica!r}")
    first, count = (0, 1) if replica == "master" else (1, workers)
    if index is None:
        return list(range(first, first + count))
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise InvalidOptionError(
            f"{replica} index {index!r} does not exist: this job has 1 master and "
            f"{workers} worker(s), indexed from 0"
        )
    return [first + index]


def node_label(node: int) -> tuple[str, int]:
    """(replica, index) of a node: node 0 is ``("master", 0)``, node 3 is ``("worker", 2)``."""
    return ("master", 0) if node == 0 else ("worker", node - 1)


def backend_class(kind: str) -> type[Executor]:
    """The executor class for ``kind``, importing its module only now."""
    try:
        module_name, _, attr = _BACKENDS[kind].partition(":")
    except KeyError:
        raise InvalidOptionError(
            f"unknown executor kind {kind!r}; known: {', '.join(sorted(_BACKENDS))}"
        ) from None
    return getattr(importlib.import_module(module_name), attr)
