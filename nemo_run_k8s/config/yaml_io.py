"""Hydra-style YAML for configs: ``run.to_yaml`` (``yaml_write.py``) and ``run.from_yaml``.

``from_yaml`` reads what ``to_yaml`` writes (and Hydra's own ``_target_`` /
``_partial_`` / ``_args_`` files) back into ``run.Config`` / ``run.Partial``
trees; an error names the YAML path of what cannot be read. Every parse is
independent: nothing is cached between calls.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import os
from pathlib import Path
from typing import Any

from nemo_run_k8s.config.buildables import Config, Partial
from nemo_run_k8s.config.traversal import ROOT
from nemo_run_k8s.config.yaml_write import RESERVED_KEYS, to_yaml
from nemo_run_k8s.errors import ConfigError

__all__ = ["from_yaml", "locate", "to_yaml"]


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
    # Text, unless it is one line naming a YAML file (any case: conf.YAML is a file too).
    if isinstance(source, str) and (
        "\n" in source or not source.lower().endswith((".yaml", ".yml"))
    ):
        return source
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"no such YAML file: {path} (pass YAML text, or an existing file's path)")
    return path.read_text()


def _from_data(data: Any, path: str) -> Any:
    if isinstance(data, list):
        return [_from_data(v, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if "_target_" not in data:
        return {k: _from_data(v, f"{path}[{k!r}]") for k, v in data.items()}
    target = locate(data["_target_"], path)
    _check_target(target, data["_target_"], path)
    partial = data.get("_partial_", False)
    if not isinstance(partial, bool):
        raise ConfigError(f"{path}._partial_ must be true or false, got {partial!r}")
    args = [_from_data(v, f"{path}._args_[{i}]") for i, v in enumerate(data.get("_args_", []))]
    kwargs = {k: _from_data(v, f"{path}.{k}") for k, v in data.items() if k not in RESERVED_KEYS}
    if target is tuple or (isinstance(target, type) and issubclass(target, enum.Enum)):
        if partial or kwargs:
            raise ConfigError(f"{path}: {data['_target_']} takes only _args_")
        return target(*args)
    cls = Partial if partial else Config
    try:
        return cls(target, *args, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: cannot configure {data['_target_']}: {err}") from err


def _check_target(target: Any, dotted: str, path: str) -> None:
    """A ``_target_`` must name a class or a function, never an object holding data.

    ``os.environ`` (or its bound ``os.environ.get``) would put the whole
    environment into the task, and messages that show the target would print
    it: such targets are refused by name, without showing them.
    """
    if inspect.isclass(target):
        return
    owner = getattr(target, "__self__", None)
    if (inspect.isfunction(target) or inspect.isbuiltin(target) or inspect.ismethod(target)) and (
        owner is None or inspect.ismodule(owner) or inspect.isclass(owner)
    ):
        return
    raise ConfigError(
        f"{path}._target_: {dotted} is a {type(target).__name__} object, not a class or a "
        "function; _target_ names what the job calls, e.g. mypackage.train or torch.optim.Adam"
    )


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
