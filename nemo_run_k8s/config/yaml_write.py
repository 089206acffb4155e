"""Writing configs as Hydra-style YAML: ``_target_`` and ``_partial_``.

``to_yaml`` writes a config tree as YAML that both ``run.from_yaml``
(``yaml_io.py``) and Hydra's ``hydra.utils.instantiate`` build into the same
objects:
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
import os
from typing import Any

import fiddle as fdl
from fiddle import daglish

from nemo_run_k8s.config.printing import target_name
from nemo_run_k8s.config.traversal import ROOT, Children, deepest_path, fold, iter_values
from nemo_run_k8s.errors import ConfigError

_SCALARS = (type(None), bool, int, float, str)
RESERVED_KEYS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


def to_yaml(cfg: Any) -> str:
    """The config tree as Hydra-style YAML text."""
    import yaml

    data = _to_data(cfg, ROOT)
    if isinstance(data, dict) and "_target_" in data and _holds_container(cfg):
        head = {k: data.pop(k) for k in ("_target_", "_partial_") if k in data}
        data = {**head, "_convert_": "all", **data}
    try:
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    except RecursionError:  # PyYAML's writer recurses once per level
        raise ConfigError(
            f"{deepest_path(cfg)}: the config is nested too deeply to write as YAML"
        ) from None


def _holds_container(cfg: Any) -> bool:
    return any(isinstance(value, (list, tuple, dict)) for _, value in iter_values(cfg))


def _to_data(value: Any, path: str) -> Any:
    # Each place a shared node appears is written out in full (no YAML anchors).
    return fold(value, _node_data, path=path, shared_once=False)


def _node_data(path: str, value: Any, kids: Children | None) -> Any:
    """The YAML data of one value, given its children's data (children come first)."""
    if isinstance(value, fdl.Buildable):
        fn = value.__fn_or_cls__
        _check_importable(fn, path)
        data: dict[str, Any] = {"_target_": target_name(fn)}
        if isinstance(value, fdl.Partial):
            data["_partial_"] = True
        elif not isinstance(value, fdl.Config):
            raise ConfigError(f"{path}: {type(value).__name__} nodes cannot be written as YAML")
        for element, arg in kids or []:
            if not isinstance(element, daglish.Attr):
                raise ConfigError(f"{path}: positional-only arguments cannot be written as YAML")
            data[element.name] = arg
        return data
    if isinstance(value, enum.Enum):
        _check_importable(type(value), path)
        return {"_target_": target_name(type(value)), "_args_": [value.value]}
    if type(value) in _SCALARS:
        return value
    if type(value) is list:
        return [item for _, item in kids or []]
    if type(value) is tuple:
        return {"_target_": "builtins.tuple", "_args_": [[item for _, item in kids or []]]}
    if type(value) is dict:
        for key in value:
            if not isinstance(key, str) or key in RESERVED_KEYS:
                raise ConfigError(f"{path}: dict key {key!r} cannot be written as a YAML key")
        return {element.key: item for element, item in kids or []}
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
    if isinstance(value, type(os.environ)):
        return "the process environment, not shown"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
