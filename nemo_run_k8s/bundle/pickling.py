"""Pickling a task for a job, and what travels by value.

Functions and classes defined in ``__main__`` or in the user's own modules (any
module not installed in site-packages or the standard library) are pickled by
value, so the job runs even when its image does not contain that code. Modules
under a ``code_dir`` that is baked into the image travel by reference instead
(they are imported in the job). Anything that cannot be pickled is named by its
config path. A ``run.Partial`` of plain values is pickled built, as a
``functools.partial``, so the job loads and calls it without importing fiddle.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
import sysconfig
import threading
import types
from collections.abc import Iterator
from typing import Any

import cloudpickle
import fiddle as fdl
from fiddle import history as fdl_history

from nemo_run_k8s.bundle.describe import deepest, iter_values
from nemo_run_k8s.errors import BundleError

#: Held while a task is pickled: registering modules by value is process-wide in cloudpickle.
_PICKLING = threading.RLock()


def pickle_task(task: Any, by_value: set[str]) -> bytes:
    """cloudpickle of ``task``, the modules ``by_value`` pickled by value.

    On failure, each value is tried alone, and the error names the config path
    of every one that cannot be pickled.
    """
    modules = [sys.modules[name] for name in by_value]
    # cloudpickle's by-value registry is process-global: one thread at a time may
    # register, pickle and unregister, or one would unregister under another.
    with _PICKLING:
        _name_classes_stably([*modules, sys.modules["__main__"]])
        with _registered_by_value(modules), _without_history(task):
            payload = _prebuilt(task)
            try:
                return cloudpickle.dumps(payload, protocol=4)
            except Exception as err:
                if isinstance(err, RecursionError) or isinstance(err.__cause__, RecursionError):
                    raise _too_deep(task) from None
                raise _unpicklable(task, err) from err


def _prebuilt(task: Any) -> Any:
    """``task`` as the job loads it: a Partial of plain values, built.

    Building one only makes a ``functools.partial`` (nothing is called), and a
    built partial unpickles without fiddle, so the job does not import it. With
    no config node among the values there is no argument factory either, so the
    partial is made here directly: fiddle's ``Partial.__build__`` would walk every
    value again looking for one (10 s for a list of five million numbers).
    Anything holding another config node is pickled as it is and built in the job.
    """
    if not isinstance(task, fdl.Partial):
        return task
    if any(isinstance(v, fdl.Buildable) and v is not task for _, v in iter_values(task)):
        return task
    args, kwargs = task.__signature_info__.transform_to_args_kwargs(dict(task.__arguments__))
    return functools.partial(task.__fn_or_cls__, *args, **kwargs)


def _too_deep(task: Any) -> BundleError:
    path, depth = deepest(task)
    if len(path) > 120:
        path = f"{path[:60]} ... {path[-40:]}"
    return BundleError(
        f"the task is nested too deeply to pickle: {path} is {depth} levels down, beyond "
        "Python's recursion limit (building it in the job would fail the same way). Flatten "
        "the config, e.g. pass a list of configs instead of nesting each in the next. "
        "Nothing was launched."
    )


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
        if len(problems) > 10:
            problems[10:] = ["... and more"]
            break
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


def by_value_modules(task: Any, code_dirs: tuple[str, ...]) -> set[str]:
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


def imports_by_reference(task: Any, by_value: set[str]) -> dict[str, list[str]]:
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
    """Registers ``modules`` by value for the block; those the user registered stay so."""
    registered = []
    try:
        for module in modules:
            if module.__name__ in cloudpickle.list_registry_pickle_by_value():
                continue  # registered by the user: theirs to unregister
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
