"""What a task is: its kind, whether it can run, and how it is described in a manifest."""

from __future__ import annotations

from typing import Any

import fiddle as fdl

from nemo_run_k8s.bundle import describe
from nemo_run_k8s.config.buildables import target_name
from nemo_run_k8s.config.script import Script
from nemo_run_k8s.errors import ConfigError


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


def describe_task(task: Any) -> str:
    """The flattened config (a script: its command line and text), at most a few dozen KiB."""
    if isinstance(task, Script):
        text = task.describe()
        if len(text) > describe.MAX_TEXT:
            text = text[: describe.MAX_TEXT] + f"\n... (cut: {len(text):,} characters in all)"
        return text
    return describe.flattened(task)


def describe_target(task: Any) -> str:
    if isinstance(task, Script):
        return task.path or "<inline script>"
    return target_name(task.__fn_or_cls__)


def yaml_or_reason(task: Any) -> tuple[str | None, str]:
    """The task as YAML for ``config.yaml``, or None and why it is left out.

    Left out when YAML cannot carry a value (a lambda, bytes) or when the task
    holds a value too large to write (see :func:`describe.too_large_for_yaml`).
    """
    if isinstance(task, Script):
        return None, "a run.Script has no config"
    too_large = describe.too_large_for_yaml(task)
    if too_large:
        return None, f"too large to write as YAML: {too_large}"
    from nemo_run_k8s.config.yaml_io import to_yaml

    try:
        return to_yaml(task), ""
    except ConfigError as err:
        return None, str(err).splitlines()[0]
    except RecursionError:
        return None, "nested too deeply to write as YAML"
