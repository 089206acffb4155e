"""Experiments and sweeps: many related jobs, one image.

``run.Experiment`` groups tasks (each with its executor and a name), launches
them together, and answers for all of them: a status table, wait, logs per
task, cancel. Jobs that run in images (Docker, Kubernetes) share one job image
per base image and code directory: every bundle goes into one image layer, so
an experiment of N jobs builds once.

``run.sweep(cfg, {"optimizer.lr": [1e-4, 3e-4], "data.batch_size": [32, 64]})``
makes the grid of copies of ``cfg`` (paths are checked against the config) as
an Experiment.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from nemo_run_k8s.api import (
    default_executor,
    launch_prepared,
    new_job_id,
    prepare,
    refused_as_submission,
    unrecorded_on_failure,
)
from nemo_run_k8s.config.paths import check_path, set_path
from nemo_run_k8s.errors import ConfigError, JobNotFoundError
from nemo_run_k8s.executors.base import Executor
from nemo_run_k8s.job import Job
from nemo_run_k8s.records import Records
from nemo_run_k8s.spec import JobIdentity, JobState, Plan
from nemo_run_k8s.tables import format_table


@dataclasses.dataclass
class _Entry:
    name: str
    task: Any
    executor: Executor


class Experiment:
    """A named group of jobs.

    >>> exp = run.Experiment("lr-sweep")
    >>> exp.add(run.Partial(train, lr=1e-4), run.DockerExecutor(), name="lr-1e-4")
    >>> exp.launch(); exp.wait(); print(exp.status())
    """

    def __init__(self, name: str, executor: Executor | None = None):
        self.name = name
        self.id = new_job_id(name)
        self.executor = executor
        self._entries: list[_Entry] = []
        self._jobs: dict[str, Job] = {}

    @classmethod
    def from_id(cls, experiment_id: str) -> Experiment:
        """Reattaches to a launched experiment from its jobs' records."""
        records = Records()
        found = records.list(experiment=experiment_id)
        if not found:
            raise JobNotFoundError(
                f"no jobs recorded for experiment {experiment_id!r} in {records.root}; "
                "`nemo-run-k8s list` shows the recorded jobs and their experiments"
            )
        exp = cls(found[0].experiment or experiment_id)
        exp.id = experiment_id
        for record in reversed(found):
            exp._jobs[record.name] = Job(record, records)
        return exp

    def add(self, task: Any, executor: Executor | None = None, name: str | None = None) -> str:
        """Adds a task; returns its name in the experiment (unique)."""
        if self._jobs:
            raise ConfigError(f"experiment {self.name!r} was already launched; start a new one")
        executor = executor or self.executor or default_executor()
        name = name or f"{self.name}-{len(self._entries)}"
        if any(e.name == name for e in self._entries):
            raise ConfigError(f"experiment {self.name!r} already has a task named {name!r}")
        self._entries.append(_Entry(name, task, executor))
        return name

    @property
    def names(self) -> list[str]:
        return [e.name for e in self._entries] or list(self._jobs)

    @property
    def jobs(self) -> dict[str, Job]:
        return dict(self._jobs)

    def dryrun(self) -> list[Plan]:
        """The plan of every task (no side effects)."""
        from nemo_run_k8s.api import dryrun

        return [dryrun(e.task, e.executor, e.name) for e in self._entries]

    def launch(self) -> dict[str, Job]:
        """Bundles every task, builds one image per base image, then launches all jobs."""
        if self._jobs:
            return self.jobs
        records = Records()
        prepared: list[tuple[Any, JobIdentity, Any]] = []
        unlaunched: list[JobIdentity] = []  # job directories no record points to yet
        with unrecorded_on_failure(unlaunched):
            for e in self._entries:
                prepared.append((e, *prepare(e.task, e.executor, e.name, self.id, records.job_dir)))
                unlaunched.append(prepared[-1][1])
            for executor in {id(e.executor): e.executor for e in self._entries}.values():
                with refused_as_submission():
                    executor.check_backend()  # once per executor: a sweep shares one
            images = self._shared_images([(e.executor, bundle) for e, _, bundle in prepared])
            for entry, job, bundle in prepared:
                key = _image_key(entry.executor)
                if key is not None:
                    job = dataclasses.replace(job, image=images[key])
                plan = entry.executor.plan(bundle, job)
                unlaunched.pop(0)  # recorded from here on, even if its launch fails
                self._jobs[entry.name] = launch_prepared(entry.executor, job, bundle, plan, records)
        return self.jobs

    @staticmethod
    def _shared_images(pairs: Sequence[tuple[Executor, Any]]) -> dict[Any, str]:
        from nemo_run_k8s.image.builder import build_image

        groups: dict[Any, list[Any]] = {}
        executors: dict[Any, Executor] = {}
        for executor, bundle in pairs:
            key = _image_key(executor)
            if key is not None:
                groups.setdefault(key, []).append(bundle)
                executors[key] = executor
        return {key: build_image(bundles, executors[key]).ref for key, bundles in groups.items()}

    def states(self) -> dict[str, JobState]:
        return {name: job.state() for name, job in self._jobs.items()}

    def status(self) -> str:
        """A table of the experiment's jobs and their states (read from the backends now)."""
        rows = [("NAME", "JOB ID", "EXECUTOR", "STATE")]
        rows += [(n, j.id, j.executor, j.state().value) for n, j in self._jobs.items()]
        return format_table(rows)

    def wait(self, timeout: float | None = None) -> dict[str, JobState]:
        """Waits for every job (or until ``timeout`` seconds pass); returns their states."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in self._jobs.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job.wait(left)
        return self.states()

    def results(self) -> dict[str, Any]:
        """Rank 0's return value of every job (raises JobFailed for a failed one)."""
        return {name: job.result() for name, job in self._jobs.items()}

    def logs(
        self,
        name: str,
        follow: bool = False,
        *,
        replica: str | None = None,
        index: int | None = None,
    ) -> Iterator[str]:
        try:
            return self._jobs[name].logs(follow=follow, replica=replica, index=index)
        except KeyError:
            raise ConfigError(
                f"no task {name!r} in experiment {self.name!r}: {self.names}"
            ) from None

    def cancel(self) -> None:
        for job in self._jobs.values():
            job.cancel()

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, id={self.id!r}, tasks={self.names})"


def _image_key(executor: Executor) -> Any:
    """Jobs with equal keys can share one job image; None for executors without images."""
    return executor.image_spec()


def sweep(
    cfg: Any,
    grid: Mapping[str, Sequence[Any]],
    executor: Executor | None = None,
    name: str | None = None,
) -> Experiment:
    """An Experiment of every combination of ``grid`` values applied to copies of ``cfg``.

    Keys are config paths (``"optimizer.lr"``); a path the config does not
    have is an error naming the valid ones. Task names say their values:
    ``sweep-lr=0.0001-batch_size=32``.
    """
    if not grid:
        raise ConfigError("sweep needs at least one path with values")
    for path, values in grid.items():
        check_path(cfg, path)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"sweep: {path} needs a non-empty list of values, got {values!r}")
    base = name or getattr(cfg.__fn_or_cls__, "__name__", "sweep")
    exp = Experiment(f"{base}-sweep", executor)
    paths = list(grid)
    for combo in itertools.product(*(grid[p] for p in paths)):
        point = cfg.copy()
        for path, value in zip(paths, combo, strict=True):
            set_path(point, path, value)
        label = "-".join(f"{p.rsplit('.', 1)[-1]}={v}" for p, v in zip(paths, combo, strict=True))
        exp.add(point, name=f"{base}-{label}")
    return exp
