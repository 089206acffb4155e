"""What NeMo-Run does to arguments when a config is created, done the same way here.

- A dataclass instance given as an argument becomes a ``run.Config`` of its
  class with its fields (nested dataclasses, and those inside lists, tuples and
  dicts, too), so ``broadcast``, ``walk`` and YAML reach inside it and the job
  builds an equal object. A dataclass with ``init=False`` fields holds state
  its constructor cannot set; it is refused with the fix: write the
  ``run.Config`` yourself.
- A parameter annotated ``Annotated[Optional[X], run.Config[X]]`` (or
  ``run.Partial[X]``) that is left unset gets ``run.Config(X)``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import fiddle as fdl

from nemo_run_k8s.errors import ConfigError

# Items that are never dataclasses: a list of only these is returned as it is, checked in C.
_PLAIN = frozenset({int, float, complex, bool, str, bytes, type(None)})


def convert_argument(value: Any, config_cls: type[fdl.Config[Any]]) -> Any:
    """``value`` with every dataclass instance in it replaced by a ``config_cls`` of it."""
    try:
        return _convert(value, config_cls, set())
    except RecursionError:
        raise ConfigError(
            "an argument is nested too deeply to configure (beyond Python's recursion limit); "
            "flatten it"
        ) from None


def _convert(value: Any, config_cls: type[fdl.Config[Any]], enclosing: set[int]) -> Any:
    if type(value) in (list, tuple, dict):
        items = value.values() if type(value) is dict else value
        if frozenset(map(type, items)) <= _PLAIN:  # a million numbers: no call per item
            return value
        if id(value) in enclosing:
            raise ConfigError(
                f"an argument contains itself (a {type(value).__name__} that holds itself); "
                "a config is a tree: give that place its own value, e.g. a copy"
            )
        enclosing.add(id(value))
        try:
            return _convert_container(value, config_cls, enclosing)
        finally:
            enclosing.discard(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        hidden = [f.name for f in dataclasses.fields(value) if not f.init]
        if hidden:
            raise ConfigError(
                f"a {cls.__qualname__} instance was given as an argument; configs hold dataclass "
                f"instances as run.Config({cls.__qualname__}, ...) of their fields, but "
                f"{', '.join(hidden)} cannot be passed to {cls.__qualname__}() (init=False), "
                f"so the job could not rebuild it. Pass run.Config({cls.__qualname__}, ...) "
                "instead, with the arguments that create it."
            )
        fields = {
            f.name: _convert(getattr(value, f.name), config_cls, enclosing)
            for f in dataclasses.fields(value)
        }
        return config_cls(cls, **fields)
    return value


def _convert_container(value: Any, config_cls: type[fdl.Config[Any]], enclosing: set[int]) -> Any:
    if type(value) in (list, tuple):
        items = [_convert(v, config_cls, enclosing) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    new = {k: _convert(v, config_cls, enclosing) for k, v in value.items()}
    return value if all(new[k] is value[k] for k in value) else new


def config_defaults(fn: Any) -> dict[str, Callable[[], fdl.Buildable]]:
    """``{parameter: make default}`` for the target's ``Annotated[Optional[X], run.Config[X]]``."""
    try:
        return _config_defaults(fn)
    except TypeError:  # an unhashable target: not cached
        return _config_defaults.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _config_defaults(fn: Any) -> dict[str, Callable[[], fdl.Buildable]]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if not any(_maybe_annotated(p.annotation) for p in params.values()):
        return {}  # the common case: no need to resolve the annotations
    hints = _hints(fn)
    defaults = {}
    for name in params:
        made = _default_config(hints.get(name))
        if made is not None:
            defaults[name] = made
    return defaults


def _maybe_annotated(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return "Annotated" in annotation or "OptionalDefault" in annotation
    return typing.get_origin(annotation) is typing.Annotated


def _hints(fn: Any) -> dict[str, Any]:
    targets = [getattr(fn, "__init__", fn), fn] if isinstance(fn, type) else [fn]
    for target in targets:
        try:
            hints = typing.get_type_hints(target, include_extras=True)
        except Exception:  # names that do not resolve: nothing to fill
            continue
        if hints:
            return hints
    return {}


def _default_config(hint: Any) -> Callable[[], fdl.Buildable] | None:
    """``run.Config(X)`` maker for ``Annotated[Optional[X], run.Config[X]]``, else None."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    optional, *metadata = typing.get_args(hint)
    options = typing.get_args(optional)
    if type(None) not in options:
        return None
    for meta in metadata:
        buildable = typing.get_origin(meta) or meta  # run.Config[X], or a bare run.Config
        if isinstance(buildable, type) and issubclass(buildable, fdl.Buildable):
            targets = typing.get_args(meta) or tuple(o for o in options if o is not type(None))
            if len(targets) == 1:
                return functools.partial(buildable, targets[0])
    return None
