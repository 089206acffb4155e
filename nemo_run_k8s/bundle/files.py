"""Job bundles: a task, pickled, with a manifest that says how to run it.

A bundle is a directory::

    task.pkl        cloudpickle of the task (run.Config, run.Partial or run.Script)
    script.sh       the script text, for a run.Script task
    manifest.json   format, task kind, target, versions, hashes, resources, flattened config
    config.yaml     the task as Hydra-style YAML, where it can be written as YAML

Its content hash (``manifest["sha256"]``) covers ``task.pkl`` and ``script.sh``
and nothing time-dependent: the same task gives the same hash, which names the
bundle inside job images. :func:`archive` packs a bundle into one file for
transport.

What travels by value: functions and classes defined in ``__main__`` or in the
user's own modules (any module not installed in site-packages or the standard
library) are pickled by value, so the job runs even when its image does not
contain that code. Modules under a ``code_dir`` that is baked into the image
travel by reference instead (they are imported in the job).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sys
import sysconfig
import tarfile
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import fiddle as fdl
from fiddle import history as fdl_history

from nemo_run_k8s.config.buildables import format_flat, iter_values, target_name
from nemo_run_k8s.config.script import Script
from nemo_run_k8s.errors import BundleError, ConfigError
from nemo_run_k8s.executors.base import Resources

FORMAT_VERSION = 1
IMAGE_BUNDLE_ROOT = "/opt/nemo_run_k8s/bundles"
OUTCOME_FILE = "result.pkl"
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
        return f"{IMAGE_BUNDLE_ROOT}/{self.sha256}"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Bundle:
        """Reads a bundle's manifest (checks nothing else; see :meth:`verify`)."""
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except FileNotFoundError:
            raise BundleError(f"{path} is not a job bundle: it has no manifest.json") from None
        except json.JSONDecodeError as err:
            raise BundleError(f"{path}/manifest.json is not valid JSON: {err}") from err
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
        actual = content_hash(self.path)
        if actual != self.manifest.get("sha256"):
            raise BundleError(
                f"bundle {self.path} is corrupt: content hash {actual[:12]} does not match "
                f"the manifest's {str(self.manifest.get('sha256'))[:12]}; resubmit the job"
            )
        made_with = str(self.manifest.get("python", "?"))
        here = "{}.{}.{}".format(*sys.version_info[:3])
        if made_with.split(".")[:2] != here.split(".")[:2]:
            raise BundleError(
                f"this bundle was pickled with Python {made_with} but the job runs Python "
                f"{here}; pickles do not load across Python minor versions. Use a base image "
                f"with Python {'.'.join(made_with.split('.')[:2])}, or submit from Python "
                f"{'.'.join(here.split('.')[:2])}."
            )

    def load_task(self) -> Any:
        """Verifies the bundle, then unpickles its task."""
        self.verify()
        return self.unpickle_task()

    def unpickle_task(self) -> Any:
        """Unpickles the task without checks: only for a bundle :meth:`verify` has passed."""
        with open(self.path / "task.pkl", "rb") as f:
            return cloudpickle.load(f)


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
    kind = task_kind(task)
    script_text = task.text() if isinstance(task, Script) else None
    by_value = _by_value_modules(task, code_dirs)
    pickled = pickle_task(task, by_value)
    files = {"task.pkl": pickled}
    if script_text is not None:
        files["script.sh"] = script_text.encode()
    manifest = {
        "format": FORMAT_VERSION,
        "task_kind": kind,
        "target": _describe_target(task),
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "versions": {
            "nemo_run_k8s": _own_version(),
            "cloudpickle": cloudpickle.__version__,
            "fiddle": _dist_version("fiddle"),
        },
        "pickle_sha256": hashlib.sha256(pickled).hexdigest(),
        "sha256": _hash_files(files),
        "resources": dataclasses.asdict(resources or Resources()),
        "by_value_modules": sorted(by_value),
        "imports": _imports(task, by_value),
        "flattened_config": describe_task(task),
    }
    yaml_text = _try_yaml(task)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(dest, manifest)


def task_kind(task: Any) -> str:
    if isinstance(task, Script):
        return "script"
    if isinstance(task, fdl.Partial):
        return "partial"
    if isinstance(task, fdl.Config):
        return "config"
    raise ConfigError(
        f"a job runs a run.Partial, run.Config or run.Script, not a {type(task).__name__}; "
        "e.g. run.Partial(train, lr=1e-3)"
    )


def check_callable(task: Any) -> None:
    """Refuses a Config whose built object cannot be called.

    A ``run.Config`` task is built and then called; a ``run.Partial`` task is
    built into a partial and called. A Config of a class without ``__call__``
    would build and then fail, so it is refused before anything starts.
    """
    if task_kind(task) != "config":
        return
    fn = task.__fn_or_cls__
    built = fn if isinstance(fn, type) else _return_type(fn)
    if built is None or any("__call__" in vars(klass) for klass in built.__mro__):
        return
    what = fn.__qualname__
    if built is fn:
        hint = f"Use run.Partial({what}, ...) to call {what}(...) as the job"
    else:
        hint = f"Use run.Partial({what}, ...) to make the call to {what} the job"
    raise ConfigError(
        f"run.Config({what}, ...) builds a {built.__qualname__} object, which is not callable, "
        f"so the job would have nothing to run. {hint}, or give {built.__qualname__} a "
        "__call__ method."
    )


def _return_type(fn: Any) -> type | None:
    """The class a function is annotated to return, if it says so."""
    import typing

    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        return None
    return hint if isinstance(hint, type) else None


def pickle_task(task: Any, by_value: set[str]) -> bytes:
    """cloudpickle of ``task``, the modules ``by_value`` pickled by value.

    On failure, each value is tried alone, and the error names the config path
    of every one that cannot be pickled.
    """
    modules = [sys.modules[name] for name in by_value]
    _name_classes_stably([*modules, sys.modules["__main__"]])
    with _registered_by_value(modules), _without_history(task):
        try:
            return cloudpickle.dumps(task, protocol=4)
        except Exception as err:
            raise _unpicklable(task, err) from err


def _unpicklable(task: Any, err: Exception) -> BundleError:
    """The error for a task that failed to pickle, naming the values that cannot be."""
    problems = []
    for path, value in iter_values(task):
        if isinstance(value, (fdl.Buildable, list, tuple, dict)):
            continue
        try:
            cloudpickle.dumps(value)
        except Exception as value_err:
            problems.append(f"{path}: {_short_error(value_err)}")
    if not problems:
        problems.append(f"<root>: {_short_error(err)}")
    return BundleError(
        "the task cannot be sent to a job, nothing was launched:\n  "
        + "\n  ".join(problems)
        + "\nMake these values configs of the calls that create them (run.Config(...)), "
        "so they are built inside the job."
    )


def _short_error(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.removesuffix(" object")


def describe_task(task: Any) -> str:
    if isinstance(task, Script):
        return task.describe()
    return format_flat(task)


def _describe_target(task: Any) -> str:
    if isinstance(task, Script):
        return task.path or "<inline script>"
    return target_name(task.__fn_or_cls__)


def _try_yaml(task: Any) -> str | None:
    if isinstance(task, Script):
        return None
    from nemo_run_k8s.config.yaml_io import to_yaml

    try:
        return to_yaml(task)
    except ConfigError:
        return None


def content_hash(path: Path) -> str:
    files = {n: (path / n).read_bytes() for n in _CONTENT_FILES if (path / n).exists()}
    return _hash_files(files)


def _hash_files(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0".encode())
        digest.update(files[name])
    return digest.hexdigest()


# --------------------------------------------------------------------------- by-value modules


def _by_value_modules(task: Any, code_dirs: tuple[str, ...]) -> set[str]:
    """Top-level names of the user's own modules that the task refers to."""
    names = set()
    for _, value in iter_values(task):
        obj = value.__fn_or_cls__ if isinstance(value, fdl.Buildable) else value
        if not isinstance(obj, (types.FunctionType, type)):
            continue
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        if module is not None and _is_user_module(module, code_dirs):
            names.add(module.__name__.partition(".")[0])
    return {n for n in names if n in sys.modules and n != "__main__"}


def _imports(task: Any, by_value: set[str]) -> dict[str, list[str]]:
    """``{module: [targets]}`` the job imports by reference (what the image must contain)."""
    imports: dict[str, set[str]] = {}
    for _, value in iter_values(task):
        obj = value.__fn_or_cls__ if isinstance(value, fdl.Buildable) else value
        if not isinstance(obj, (types.FunctionType, type)):
            continue
        module = getattr(obj, "__module__", None) or ""
        if module == "__main__" or module.partition(".")[0] in by_value:
            continue
        imports.setdefault(module, set()).add(obj.__qualname__)
    return {m: sorted(t) for m, t in sorted(imports.items())}


def _is_user_module(module: types.ModuleType, code_dirs: tuple[str, ...]) -> bool:
    if module.__name__ == "__main__":
        return False  # cloudpickle always pickles __main__ by value
    top = module.__name__.partition(".")[0]
    if top in {"nemo_run_k8s", "fiddle", "cloudpickle"} or top in sys.stdlib_module_names:
        return False
    file = getattr(module, "__file__", None)
    if not file:
        return False
    file = os.path.realpath(file)
    if any(file.startswith(os.path.realpath(d) + os.sep) for d in code_dirs):
        return False
    return not any(file.startswith(prefix) for prefix in _installed_prefixes())


def _installed_prefixes() -> list[str]:
    paths = sysconfig.get_paths()
    prefixes = {os.path.realpath(paths[key]) + os.sep for key in ("stdlib", "platstdlib")}
    prefixes |= {os.path.realpath(paths[key]) + os.sep for key in ("purelib", "platlib")}
    prefixes |= {
        os.path.realpath(p) + os.sep
        for p in sys.path
        if p.endswith(("site-packages", "dist-packages"))
    }
    return sorted(prefixes)


@contextlib.contextmanager
def _without_history(task: Any) -> Iterator[None]:
    """Hides fiddle's argument history while pickling.

    Each config node records where and in which order its arguments were set
    (file, line, a process-wide counter). The job does not need it, and it
    would make the same task pickle differently each time it is created.
    """
    nodes = [v for _, v in iter_values(task) if isinstance(v, fdl.Buildable)]
    saved = [node.__argument_history__ for node in nodes]
    try:
        for node in nodes:
            object.__setattr__(node, "__argument_history__", fdl_history.History())
        yield
    finally:
        for node, history in zip(nodes, saved, strict=True):
            object.__setattr__(node, "__argument_history__", history)


def _name_classes_stably(modules: list[types.ModuleType]) -> None:
    """Gives the module-level classes pickled by value a tracker id derived from their name.

    cloudpickle tags each class it pickles by value with a random id (so that
    one process unpickling it twice gets one class). Random ids would make the
    same task hash differently in every submitting process; an id from the
    class's module and name keeps the bundle hash stable. This uses cloudpickle
    internals and does nothing if they change.
    """
    internals = cloudpickle.cloudpickle
    by_class = getattr(internals, "_DYNAMIC_CLASS_TRACKER_BY_CLASS", None)
    by_id = getattr(internals, "_DYNAMIC_CLASS_TRACKER_BY_ID", None)
    lock = getattr(internals, "_DYNAMIC_CLASS_TRACKER_LOCK", None)
    if by_class is None or by_id is None or lock is None:
        return
    tops = {m.__name__ for m in modules}
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] not in tops or module is None:
            continue
        for obj in list(vars(module).values()):
            if not isinstance(obj, type) or obj.__module__ != name:
                continue
            tracker = hashlib.sha256(f"{name}:{obj.__qualname__}".encode()).hexdigest()[:32]
            with lock:
                if by_class.get(obj) is None:
                    by_class[obj] = tracker
                    by_id.setdefault(tracker, obj)


@contextlib.contextmanager
def _registered_by_value(modules: list[types.ModuleType]) -> Iterator[None]:
    registered = []
    try:
        for module in modules:
            try:
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
            except ValueError:  # already registered by the user
                pass
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


# --------------------------------------------------------------------------- outcomes


def write_outcome(output_dir: Path, status: str, value: Any) -> None:
    """Writes rank 0's ``(status, value)`` atomically (temp file, then rename)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        data = cloudpickle.dumps((status, value))
    except Exception as err:
        data = cloudpickle.dumps(
            ("error", f"the job returned a {type(value).__name__} that cannot be pickled: {err}")
        )
    fd, tmp = tempfile.mkstemp(prefix=".result.", dir=output_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, output_dir / OUTCOME_FILE)


def read_outcome(output_dir: Path) -> tuple[str, Any] | None:
    """Rank 0's outcome, or None when it has not been written."""
    try:
        data = (output_dir / OUTCOME_FILE).read_bytes()
    except FileNotFoundError:
        return None
    status, value = cloudpickle.loads(data)
    return status, value


# --------------------------------------------------------------------------- transport


def archive(bundle: Bundle, dest: str | os.PathLike[str]) -> Path:
    """Packs the bundle into one reproducible ``.tar.gz`` file (for transport)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for file in sorted(bundle.path.iterdir()):
            info = tar.gettarinfo(str(file), arcname=file.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(file, "rb") as f:
                tar.addfile(info, f)
    dest = Path(dest)
    dest.write_bytes(buf.getvalue())
    return dest


def unarchive(archive_path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Bundle:
    """Unpacks an archive made by :func:`archive` and returns the bundle."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return Bundle.open(dest)


def _own_version() -> str:
    from nemo_run_k8s import __version__

    return __version__


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
