"""Job bundles: a task, pickled, with a manifest that says how to run it.

A bundle is a directory::

    task.pkl        cloudpickle of the task (run.Config, run.Partial or run.Script)
    script.sh       the script text, for a run.Script task
    manifest.json   format, task kind, target, versions, hashes, resources, flattened config
    config.yaml     the task as Hydra-style YAML, where it can be written as YAML

Its content hash (``manifest["sha256"]``) covers ``task.pkl`` and ``script.sh``
and nothing time-dependent: the same task gives the same hash, which names the
bundle inside job images.

This module owns the bundle format: writing (:func:`make_bundle`), reading and
checking (:class:`Bundle`). What the task is and how it is described live in
``tasks.py``; how it is pickled (and what travels by value) in ``pickling.py``;
rank 0's outcome file in ``outcome.py``. Reading and checking a bundle imports
no fiddle (only writing one does), so a job whose task unpickles without
fiddle (see ``pickling.py``) starts without importing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import cloudpickle

from nemo_run_k8s.config.script import Script
from nemo_run_k8s.errors import BundleError
from nemo_run_k8s.paths import image_bundle_path
from nemo_run_k8s.spec import Resources

FORMAT_VERSION = 1
_CONTENT_FILES = ("task.pkl", "script.sh")


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A bundle on disk: its directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def image_path(self) -> str:
        """Where this bundle lives inside a job image."""
        return image_bundle_path(self.sha256)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Bundle:
        """Reads a bundle's manifest (checks nothing else; see :meth:`verify`)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise BundleError(
                f"{path} is a file, not a job bundle (a directory with manifest.json)"
            )
        try:
            manifest = json.loads((path / "manifest.json").read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path} is not a job bundle: it has no manifest.json") from None
        except UnicodeDecodeError as err:
            raise BundleError(
                f"{path}/manifest.json is not UTF-8 text ({err.reason}); "
                "the bundle is damaged: resubmit the job"
            ) from err
        except json.JSONDecodeError as err:
            raise BundleError(
                f"{path}/manifest.json is not valid JSON ({err}); the bundle is "
                "damaged or was cut short: resubmit the job"
            ) from err
        except OSError as err:
            raise BundleError(f"cannot read {path}/manifest.json: {err.strerror}") from err
        if not isinstance(manifest, dict):
            raise BundleError(
                f"{path}/manifest.json holds a JSON {type(manifest).__name__}, not an object; "
                "the bundle is damaged: resubmit the job"
            )
        return cls(path, manifest)

    def verify(self) -> None:
        """Checks format, content hash and Python minor version before loading.

        Each failure is a :class:`BundleError` that says what to do; nothing is
        unpickled before all checks pass.
        """
        fmt = self.manifest.get("format")
        if fmt != FORMAT_VERSION:
            raise BundleError(
                f"bundle format {fmt!r} is not supported by nemo_run_k8s "
                f"{_own_version()} (it reads format {FORMAT_VERSION}): submit the job with "
                "the same nemo_run_k8s version as the one in the image"
            )
        problems = _manifest_problems(self.manifest)
        if problems:
            raise BundleError(
                f"{self.path}/manifest.json is damaged ({'; '.join(problems)}): resubmit the job"
            )
        try:
            actual = content_hash(self.path)
        except OSError as err:
            raise BundleError(f"cannot read bundle {self.path}: {err}; resubmit the job") from err
        if actual != self.manifest.get("sha256"):
            raise BundleError(
                f"bundle {self.path} is corrupt: content hash {actual[:12]} does not match "
                f"the manifest's {str(self.manifest.get('sha256'))[:12]}; resubmit the job"
            )
        made_with = str(self.manifest.get("python", "?"))
        here = "{}.{}.{}".format(*sys.version_info[:3])
        if made_with.split(".")[:2] != here.split(".")[:2]:
            raise python_mismatch(made_with, here, "the job")

    def load_task(self) -> Any:
        """Verifies the bundle, then unpickles its task."""
        self.verify()
        return self.unpickle_task()

    def unpickle_task(self) -> Any:
        """Unpickles the task without checks: only for a bundle :meth:`verify` has passed."""
        with open(self.path / "task.pkl", "rb") as f:
            return cloudpickle.load(f)


#: What the entrypoint reads of a manifest, and the type each must have.
_REQUIRED = {"sha256": str, "task_kind": str, "python": str, "resources": dict}


def _manifest_problems(manifest: dict[str, Any]) -> list[str]:
    problems = []
    for key, kind in _REQUIRED.items():
        if key not in manifest:
            problems.append(f"no {key!r}")
        elif not isinstance(manifest[key], kind):
            problems.append(f"{key!r} is a {type(manifest[key]).__name__}, not a {kind.__name__}")
    if problems:
        return problems
    if manifest["task_kind"] not in ("config", "partial", "script"):
        problems.append(f"task_kind {manifest['task_kind']!r} is not config, partial or script")
    nproc = manifest["resources"].get("nproc_per_node")
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        problems.append(f"resources.nproc_per_node is {nproc!r}, not an integer >= 1")
    return problems


def python_mismatch(pickled_with: str, runs: str, where: str) -> BundleError:
    """The error for a bundle pickled under one Python minor version and run under another."""
    want = ".".join(pickled_with.split(".")[:2])
    have = ".".join(runs.split(".")[:2])
    return BundleError(
        f"the job is pickled with Python {pickled_with} but {where} runs Python {runs}; "
        f"pickles do not load across Python minor versions. Use a base image with Python "
        f"{want}, or submit from Python {have}."
    )


# --------------------------------------------------------------------------- writing


def make_bundle(
    task: Any,
    dest: str | os.PathLike[str],
    resources: Resources | None = None,
    code_dirs: tuple[str, ...] = (),
) -> Bundle:
    """Writes ``task`` as a bundle at ``dest`` (atomically) and returns it.

    Raises :class:`BundleError` naming the config path of anything that cannot
    be pickled; nothing is written then.
    """
    # Here, not at the top: they import fiddle, which reading a bundle in a job does not need.
    from nemo_run_k8s.bundle.describe import remembering

    with remembering():  # the task is walked several times: large containers are typed once
        return _make_bundle(task, dest, resources, code_dirs)


def _make_bundle(
    task: Any, dest: str | os.PathLike[str], resources: Resources | None, code_dirs: tuple[str, ...]
) -> Bundle:
    from nemo_run_k8s.bundle.pickling import by_value_modules, imports_by_reference, pickle_task
    from nemo_run_k8s.bundle.tasks import describe_target, describe_task, task_kind, yaml_or_reason

    kind = task_kind(task)
    script_text = task.text() if isinstance(task, Script) else None
    by_value = by_value_modules(task, code_dirs)
    pickled = pickle_task(task, by_value)
    files = {"task.pkl": pickled}
    if script_text is not None:
        files["script.sh"] = script_text.encode()
    manifest = {
        "format": FORMAT_VERSION,
        "task_kind": kind,
        "target": describe_target(task),
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "versions": {
            "nemo_run_k8s": _own_version(),
            "cloudpickle": cloudpickle.__version__,
            "fiddle": _dist_version("fiddle"),
        },
        "sha256": _hash_files(files),
        "resources": dataclasses.asdict(resources or Resources()),
        "by_value_modules": sorted(by_value),
        "imports": imports_by_reference(task, by_value),
        "flattened_config": describe_task(task),
    }
    yaml_text, no_yaml = yaml_or_reason(task)
    if yaml_text is None:
        manifest["config_yaml_omitted"] = no_yaml
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as err:
        raise _unwritable(dest, err) from err
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if yaml_text is not None:
            (tmp / "config.yaml").write_text(yaml_text)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if dest.exists():
            existing = Bundle.open(dest)
            if existing.sha256 == manifest["sha256"]:
                shutil.rmtree(tmp)
                return existing
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise _unwritable(dest, err) from err
        raise
    return Bundle(dest, manifest)


def _unwritable(dest: Path, err: OSError) -> BundleError:
    return BundleError(
        f"cannot write the job's bundle {dest}: {err.strerror or err}. Free some space, or set "
        "NEMO_RUN_K8S_HOME to a directory you can write to."
    )


def content_hash(path: Path) -> str:
    files = {n: (path / n).read_bytes() for n in _CONTENT_FILES if (path / n).exists()}
    return _hash_files(files)


def _hash_files(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0".encode())
        digest.update(files[name])
    return digest.hexdigest()


def _own_version() -> str:
    from nemo_run_k8s import __version__

    return __version__


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
