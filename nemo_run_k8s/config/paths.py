"""Dotted config paths (``optimizer.lr``): check that one exists, set the value it names.

Used by ``run.sweep`` and by the CLI's ``path=value`` overrides. A path walks
config nodes by argument name; its last part names a parameter of the node it
reaches.
"""

from __future__ import annotations

from typing import Any

import fiddle as fdl

from nemo_run_k8s.config.buildables import parameters
from nemo_run_k8s.errors import ConfigError


def check_path(cfg: Any, path: str) -> None:
    """Raises ConfigError unless ``path`` names a parameter of a node in ``cfg``."""
    node, attr = _parent(cfg, path)
    params = parameters(node.__fn_or_cls__)
    if attr not in params and attr not in node.__arguments__:
        prefix = path.rpartition(".")[0]
        valid = ", ".join(f"{prefix + '.' if prefix else ''}{p}" for p in params)
        raise ConfigError(f"{path}: {_target(node)} has no parameter {attr!r}. Valid: {valid}")


def set_path(cfg: Any, path: str, value: Any) -> None:
    """Sets the parameter ``path`` names (see :func:`check_path`) to ``value``."""
    node, attr = _parent(cfg, path)
    setattr(node, attr, value)


def node_at(cfg: Any, path: str) -> Any:
    """The config node holding the parameter ``path`` names."""
    return _parent(cfg, path)[0]


def _parent(cfg: Any, path: str) -> tuple[Any, str]:
    *parents, attr = path.split(".")
    node = cfg
    walked = []
    for part in parents:
        walked.append(part)
        child = node.__arguments__.get(part) if isinstance(node, fdl.Buildable) else None
        if not isinstance(child, fdl.Buildable):
            here = ".".join(walked[:-1]) or "<root>"
            subs = [k for k, v in node.__arguments__.items() if isinstance(v, fdl.Buildable)]
            raise ConfigError(
                f"{path}: {'.'.join(walked)} is not a config node. Config nodes under {here}: "
                f"{', '.join(subs) or '(none)'}"
            )
        node = child
    return node, attr


def _target(node: Any) -> str:
    return getattr(node.__fn_or_cls__, "__qualname__", repr(node.__fn_or_cls__))
