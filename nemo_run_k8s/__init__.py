"""nemo_run_k8s: from a Python config to a job on Kubernetes, Docker or a local process.

>>> import nemo_run_k8s as run
>>> task = run.Partial(train, lr=3e-4)
>>> job = run.submit(task, run.LocalExecutor())
>>> job.result()

Backends (and the docker / kubernetes packages) are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BundleError",
    "Config",
    "ConfigError",
    "ConfigMapVolume",
    "DockerExecutor",
    "Experiment",
    "ImageBuildError",
    "InvalidOptionError",
    "Job",
    "JobFailed",
    "JobImage",
    "JobNotFoundError",
    "JobState",
    "KubernetesExecutor",
    "LocalExecutor",
    "NemoRunError",
    "PVCVolume",
    "Partial",
    "RecordsError",
    "ResultMissingError",
    "Script",
    "SecretVolume",
    "SubmissionError",
    "__version__",
    "autoconvert",
    "build_image",
    "dryrun",
    "from_yaml",
    "list_jobs",
    "push_image",
    "run",
    "set_progress",
    "submit",
    "sweep",
    "to_yaml",
]

# Every name is loaded on first use: `import nemo_run_k8s` costs almost nothing, the CLI starts
# fast, and fiddle, docker and kubernetes load only when something needs them.
_LAZY = {
    "Config": "nemo_run_k8s.config.buildables",
    "Partial": "nemo_run_k8s.config.buildables",
    "autoconvert": "nemo_run_k8s.config.autoconvert",
    "Script": "nemo_run_k8s.config.script",
    "to_yaml": "nemo_run_k8s.config.yaml_io",
    "from_yaml": "nemo_run_k8s.config.yaml_io",
    "BackendError": "nemo_run_k8s.errors",
    "BundleError": "nemo_run_k8s.errors",
    "ConfigError": "nemo_run_k8s.errors",
    "ImageBuildError": "nemo_run_k8s.errors",
    "InvalidOptionError": "nemo_run_k8s.errors",
    "JobFailed": "nemo_run_k8s.errors",
    "JobNotFoundError": "nemo_run_k8s.errors",
    "NemoRunError": "nemo_run_k8s.errors",
    "RecordsError": "nemo_run_k8s.errors",
    "ResultMissingError": "nemo_run_k8s.errors",
    "SubmissionError": "nemo_run_k8s.errors",
    "Job": "nemo_run_k8s.job",
    "JobState": "nemo_run_k8s.spec",
    "submit": "nemo_run_k8s.api",
    "set_progress": "nemo_run_k8s.progress",
    "run": "nemo_run_k8s.api",
    "dryrun": "nemo_run_k8s.api",
    "list_jobs": "nemo_run_k8s.job",
    "LocalExecutor": "nemo_run_k8s.executors.local.executor",
    "DockerExecutor": "nemo_run_k8s.executors.docker.executor",
    "KubernetesExecutor": "nemo_run_k8s.executors.kubernetes.executor",
    "JobImage": "nemo_run_k8s.image.builder",
    "build_image": "nemo_run_k8s.image.builder",
    "push_image": "nemo_run_k8s.image.push",
    "Experiment": "nemo_run_k8s.experiment",
    "PVCVolume": "nemo_run_k8s.executors.kubernetes.options",
    "ConfigMapVolume": "nemo_run_k8s.executors.kubernetes.options",
    "SecretVolume": "nemo_run_k8s.executors.kubernetes.options",
    "sweep": "nemo_run_k8s.experiment",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nemo_run_k8s' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from nemo_run_k8s.api import dryrun, run, submit
    from nemo_run_k8s.config.autoconvert import autoconvert
    from nemo_run_k8s.config.buildables import Config, Partial
    from nemo_run_k8s.config.script import Script
    from nemo_run_k8s.config.yaml_io import from_yaml, to_yaml
    from nemo_run_k8s.errors import (
        BackendError,
        BundleError,
        ConfigError,
        ImageBuildError,
        InvalidOptionError,
        JobFailed,
        JobNotFoundError,
        NemoRunError,
        RecordsError,
        ResultMissingError,
        SubmissionError,
    )
    from nemo_run_k8s.executors.docker.executor import DockerExecutor
    from nemo_run_k8s.executors.kubernetes.executor import KubernetesExecutor
    from nemo_run_k8s.executors.kubernetes.options import ConfigMapVolume, PVCVolume, SecretVolume
    from nemo_run_k8s.executors.local.executor import LocalExecutor
    from nemo_run_k8s.experiment import Experiment, sweep
    from nemo_run_k8s.image.builder import JobImage, build_image
    from nemo_run_k8s.image.push import push_image
    from nemo_run_k8s.job import Job, list_jobs
    from nemo_run_k8s.progress import set_progress
    from nemo_run_k8s.spec import JobState
