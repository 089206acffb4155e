"""Loading task factories and applying ``path=value`` overrides (for the CLI).

A value is converted to the type the target's signature declares for that
parameter (``int``, ``float``, ``bool``, ``str``, enums, ``Optional[...]``);
without a usable annotation it is read as a number or bool when it looks like
one, else kept as a string.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fiddle as fdl

from nemo_run_k8s.config.buildables import Config, Partial
from nemo_run_k8s.config.paths import check_path, node_at, set_path
from nemo_run_k8s.config.script import Script
from nemo_run_k8s.errors import ConfigError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def load_factory(spec: str, partial: bool = False) -> Any:
    """Calls ``module:function`` / ``file.py:function`` and returns its task.

    With ``partial`` the function itself becomes the task, ``run.Partial(function)``.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(
            f"FACTORY {spec!r}: expected package.module:function or path/to/file.py:function"
        )
    module = _load_module(target)
    try:
        fn = getattr(module, attr)
    except AttributeError:
        public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise ConfigError(
            f"{target} has no {attr!r}; callables there: {', '.join(sorted(public))}"
        ) from None
    if partial:
        return Partial(fn)
    task = fn()
    if not isinstance(task, (fdl.Buildable, Script)):
        raise ConfigError(
            f"{spec} returned a {type(task).__name__}, not a run.Config, run.Partial or "
            "run.Script. To run the function itself, pass --partial."
        )
    return task


def _load_module(target: str) -> types.ModuleType:
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise ConfigError(f"no such file: {target}")
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load {target} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent))  # its sibling imports resolve as when run directly
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ImportError as err:
        raise ConfigError(f"cannot import {target!r}: {err}") from err


def apply_overrides(task: Any, overrides: Sequence[str]) -> None:
    """Applies ``path=value`` overrides to a config, converting values by signature."""
    if overrides and isinstance(task, Script):
        raise ConfigError("overrides apply to run.Config / run.Partial tasks, not run.Script")
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"override {item!r}: expected path.to.param=value")
        check_path(task, path)
        node = node_at(task, path)
        param = path.rsplit(".", 1)[-1]
        hint = _hints(node.__fn_or_cls__).get(param, inspect.Parameter.empty)
        set_path(task, path, parse_typed(raw, hint, path))


def _hints(fn: Any) -> dict[str, Any]:
    target = vars(fn).get("__init__", fn) if isinstance(fn, type) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:
        try:
            return {n: p.annotation for n, p in inspect.signature(fn).parameters.items()}
        except (TypeError, ValueError):
            return {}


def parse_typed(raw: str, hint: Any, where: str) -> Any:
    """Converts ``raw`` to ``hint``'s type; a value that does not fit is a ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw.lower() in ("none", "null") and len(options) < len(typing.get_args(hint)):
            return None
        problems = []
        for option in options:
            try:
                return parse_typed(raw, option, where)
            except ConfigError as err:
                problems.append(str(err).removeprefix(f"{where} "))
        raise ConfigError(f"{where}: {raw!r} fits none of {hint} ({'; '.join(problems)})")
    if hint is bool:
        lowered = raw.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{where} expects a bool (true/false), got {raw!r}")
    if hint in (int, float):
        try:
            return hint(raw)
        except ValueError:
            raise ConfigError(f"{where} expects {hint.__name__}, got {raw!r}") from None
    if hint is str or hint is Path:
        return hint(raw)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if raw in (member.name, str(member.value)):
                return member
        raise ConfigError(f"{where} expects one of {[m.name for m in hint]}, got {raw!r}")
    if origin in (list, tuple, dict) or hint in (list, tuple, dict):
        import yaml

        kind = origin or hint
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            where_in = str(getattr(err, "problem", "") or "").strip() or "malformed"
            raise ConfigError(
                f"{where} expects a {kind.__name__} in YAML, e.g. [1, 2] or {{a: 1}}; "
                f"{raw!r} is not valid YAML ({where_in})"
            ) from None
        if kind is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, kind):
            example = "{a: 1}" if kind is dict else "[1, 2]"
            raise ConfigError(
                f"{where} expects a {kind.__name__} (YAML, e.g. {example}), got {raw!r}"
            )
        _check_items(value, hint, where, raw)
        return value
    return _guess(raw)


def _check_items(value: Any, hint: Any, where: str, raw: str) -> None:
    """Checks the items of ``list[int]``-like hints whose item type is a plain scalar."""
    args = typing.get_args(hint)
    if isinstance(value, dict):
        items = list(value.values())
        item_type = args[1] if len(args) == 2 else None
    elif isinstance(value, tuple) and len(args) == 2 and args[1] is Ellipsis:
        items, item_type = list(value), args[0]
    elif isinstance(value, list) and len(args) == 1:
        items, item_type = value, args[0]
    else:
        return
    if item_type not in (int, float, bool):  # a str item may be written unquoted: 1, v2
        return
    allowed: tuple[type, ...] = (int, float) if item_type is float else (item_type,)
    for item in items:
        if not isinstance(item, allowed) or (isinstance(item, bool) and item_type is not bool):
            raise ConfigError(
                f"{where} expects {hint}, but {item!r} in {raw!r} is not a {item_type.__name__}"
            )


def _guess(raw: str) -> Any:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.lower() in ("none", "null"):
        return None
    return raw


__all__ = ["Config", "apply_overrides", "load_factory", "parse_typed"]
