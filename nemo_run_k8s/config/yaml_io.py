"""Hydra-style YAML for configs: ``_target_`` and ``_partial_``.

``to_yaml`` writes a config tree as YAML that both :func:`from_yaml` and
Hydra's ``hydra.utils.instantiate`` build into the same objects:

- a ``run.Config`` node is a mapping with ``_target_: module.QualName``;
- a ``run.Partial`` node adds ``_partial_: true``;
- tuples are ``{_target_: builtins.tuple, _args_: [[...]]}`` and enum members
  ``{_target_: module.Enum, _args_: [value]}`` (so both sides rebuild the real
  type, not a list or a string);
- lists, dicts with string keys, None, bools, numbers and strings are plain YAML;
  when the tree holds any list, tuple or dict, the root carries ``_convert_: all``
  so Hydra passes them as plain Python containers (its default would hand the
  targets OmegaConf ``ListConfig``/``DictConfig`` objects and turn a tuple
  nested in a list into a ``ListConfig``).

Anything else (a lambda, a lock, an arbitrary object) is an error naming its
config path. A node shared by several parents is written at each place, so the
built objects are equal but no longer shared. Every parse is independent:
nothing is cached between calls.
"""

from __future__ import annotations

import enum
import importlib
import os
from pathlib import Path
from typing import Any

import fiddle as fdl

from nemo_run_k8s.config.buildables import ROOT, Config, Partial, iter_values, target_name
from nemo_run_k8s.errors import ConfigError

_SCALARS = (type(None), bool, int, float, str)
_RESERVED = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


def to_yaml(cfg: Any) -> str:
    """The config tree as Hydra-style YAML text."""
    import yaml

    data = _to_data(cfg, ROOT)
    if isinstance(data, dict) and "_target_" in data and _holds_container(cfg):
        head = {k: data.pop(k) for k in ("_target_", "_partial_") if k in data}
        data = {**head, "_convert_": "all", **data}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _holds_container(cfg: Any) -> bool:
    return any(isinstance(value, (list, tuple, dict)) for _, value in iter_values(cfg))


def _to_data(value: Any, path: str) -> Any:
    if isinstance(value, fdl.Buildable):
        fn = value.__fn_or_cls__
        _check_importable(fn, path)
        data: dict[str, Any] = {"_target_": target_name(fn)}
        if isinstance(value, fdl.Partial):
            data["_partial_"] = True
        elif not isinstance(value, fdl.Config):
            raise ConfigError(f"{path}: {type(value).__name__} nodes cannot be written as YAML")
        for name, arg in value.__arguments__.items():
            if not isinstance(name, str):
                raise ConfigError(f"{path}: positional-only arguments cannot be written as YAML")
            data[name] = _to_data(arg, f"{path}.{name}")
        return data
    if isinstance(value, enum.Enum):
        _check_importable(type(value), path)
        return {"_target_": target_name(type(value)), "_args_": [value.value]}
    if type(value) in _SCALARS:
        return value
    if type(value) is list:
        return [_to_data(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if type(value) is tuple:
        items = [_to_data(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return {"_target_": "builtins.tuple", "_args_": [items]}
    if type(value) is dict:
        out = {}
        for key, v in value.items():
            if not isinstance(key, str) or key in _RESERVED:
                raise ConfigError(f"{path}: dict key {key!r} cannot be written as a YAML key")
            out[key] = _to_data(v, f"{path}[{key!r}]")
        return out
    if getattr(value, "__name__", None) == "<lambda>":
        what = "a lambda"
    else:
        what = f"a {type(value).__name__} ({_short_repr(value)})"
    if callable(value):
        advice = "configure it instead, e.g. run.Partial(module_level_function, ...)"
    else:
        advice = "make this value a run.Config of the call that creates it"
    raise ConfigError(
        f"{path}: {what} cannot be written as YAML; {advice}. YAML carries configs, lists, "
        "tuples, dicts, enums, strings, numbers, bools and None."
    )


def _check_importable(fn: Any, path: str) -> None:
    qualname = getattr(fn, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        what = "a lambda" if "<lambda>" in qualname else "a definition inside a function"
        raise ConfigError(
            f"{path}: {what} ({qualname}) has no importable name, so YAML's _target_ cannot "
            "refer to it; define it at module level."
        )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_yaml(source: str | os.PathLike[str]) -> Any:
    """Parses Hydra-style YAML (text, or a path to a ``.yaml`` file) into configs."""
    import yaml

    text = _read_source(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {err}") from err
    return _from_data(data, ROOT)


def _read_source(source: str | os.PathLike[str]) -> str:
    if isinstance(source, str) and ("\n" in source or not source.endswith((".yaml", ".yml"))):
        return source
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"no such YAML file: {path}")
    return path.read_text()


def _from_data(data: Any, path: str) -> Any:
    if isinstance(data, list):
        return [_from_data(v, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if "_target_" not in data:
        return {k: _from_data(v, f"{path}[{k!r}]") for k, v in data.items()}
    target = locate(data["_target_"], path)
    partial = data.get("_partial_", False)
    if not isinstance(partial, bool):
        raise ConfigError(f"{path}._partial_ must be true or false, got {partial!r}")
    args = [_from_data(v, f"{path}._args_[{i}]") for i, v in enumerate(data.get("_args_", []))]
    kwargs = {k: _from_data(v, f"{path}.{k}") for k, v in data.items() if k not in _RESERVED}
    if target is tuple or (isinstance(target, type) and issubclass(target, enum.Enum)):
        if partial or kwargs:
            raise ConfigError(f"{path}: {data['_target_']} takes only _args_")
        return target(*args)
    cls = Partial if partial else Config
    try:
        return cls(target, *args, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: cannot configure {data['_target_']}: {err}") from err


def locate(dotted: Any, path: str = ROOT) -> Any:
    """Imports ``module.Attr.Sub`` by trying the longest importable module prefix."""
    if not isinstance(dotted, str) or not dotted:
        raise ConfigError(f"{path}._target_ must be a dotted name, got {dotted!r}")
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ConfigError(
        f"{path}._target_: cannot import {dotted!r}. Use module.QualName of an importable "
        "module (is the module on PYTHONPATH?)."
    )
