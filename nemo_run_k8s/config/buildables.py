"""``run.Config`` and ``run.Partial``: fiddle's buildables with tree-wide helpers.

``Config`` and ``Partial`` subclass fiddle's, so ``fdl.build``, fiddle's
printing and serialization accept them unchanged. They add a few tree-wide
helpers (:meth:`~_TreeOps.broadcast`, :meth:`~_TreeOps.walk`,
:meth:`~_TreeOps.copy` alias ``clone``, :meth:`~_TreeOps.to_yaml`) that visit
every config node of the tree (see :mod:`nemo_run_k8s.config.traversal`).

Two conversions happen when a config is created, as in NeMo-Run (see
:mod:`nemo_run_k8s.config.arguments`): a dataclass instance given as an argument
becomes a ``run.Config`` of it, and a parameter annotated
``Annotated[Optional[X], run.Config[X]]`` that is left unset gets ``run.Config(X)``.
"""

from __future__ import annotations

import copy as _copy
import functools
import gc
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import fiddle as fdl
from fiddle import daglish

from nemo_run_k8s.config.arguments import config_defaults, convert_argument
from nemo_run_k8s.config.printing import flatten, format_flat, format_tree, target_name
from nemo_run_k8s.config.traversal import (
    ROOT,
    Children,
    children,
    deepest_path,
    fold,
    iter_buildables,
    iter_values,
)
from nemo_run_k8s.errors import ConfigError

# Importing fiddle (libcst with it) leaves some 27,000 objects that live as long as the process.
# Freezing what exists now (CPython's gc.freeze, meant for such long-lived objects and for
# processes that fork, as ours do for supervisors and local jobs) keeps later collections and
# the interpreter's exit from walking them again: a submitting process ends ~0.1 s sooner (see
# bench/run_all.py). Objects that exist now and later become cyclic garbage are not collected.
gc.freeze()

T = TypeVar("T", bound="fdl.Buildable")
_T = TypeVar("_T")

# Other rooms import these from here (bundle/ takes target_name; it walks tasks with
# config.traversal.walk, leaving plain containers whole: a task may hold millions of values).
__all__ = [
    "ROOT",
    "Config",
    "Partial",
    "accepts",
    "flatten",
    "format_flat",
    "format_tree",
    "iter_buildables",
    "iter_values",
    "parameters",
    "target_name",
]


@functools.lru_cache(maxsize=1024)
def parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The named parameters of a config target (no ``*args``/``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return {}
    return {
        name: p
        for name, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def accepts(node: fdl.Buildable, name: str) -> bool:
    """Whether the node's target has a named parameter ``name``."""
    return name in parameters(node.__fn_or_cls__)


class _TreeOps:
    """Tree-wide helpers shared by :class:`Config` and :class:`Partial`."""

    def __init__(self, fn_or_cls: Any, /, *args: Any, **kwargs: Any):
        args = tuple(convert_argument(a, Config) for a in args)
        kwargs = {k: convert_argument(v, Config) for k, v in kwargs.items()}
        if not isinstance(fn_or_cls, fdl.Buildable):
            for name, make_default in config_defaults(fn_or_cls).items():
                if name not in kwargs:
                    kwargs[name] = make_default()
        super().__init__(fn_or_cls, *args, **kwargs)  # type: ignore[call-arg]

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("__"):
            value = convert_argument(value, Config)
        super().__setattr__(name, value)

    def broadcast(self: T, **values: Any) -> T:
        """Sets each value on every node whose target accepts that parameter.

        Works in place and returns the config, so calls chain. A name that no
        node in the tree accepts is an error listing the names the tree does
        accept (a typo would otherwise pass silently).

        >>> cfg.broadcast(lr=1e-4, batch_size=64)
        """
        nodes = [node for _, node in iter_buildables(self)]
        unmatched = [name for name in values if not any(accepts(n, name) for n in nodes)]
        if unmatched:
            accepted = sorted({p for n in nodes for p in parameters(n.__fn_or_cls__)})
            raise ConfigError(
                f"broadcast: no config node in this tree accepts {', '.join(unmatched)}. "
                f"Parameters the tree accepts: {', '.join(accepted) or '(none)'}"
            )
        for node in nodes:
            for name, value in values.items():
                if accepts(node, name):
                    setattr(node, name, value)
        return self

    @overload
    def walk(self: T, fn: Callable[[fdl.Buildable], Any], /) -> T: ...

    @overload
    def walk(self: T, **fns: Callable[[fdl.Buildable], Any]) -> T: ...

    def walk(self, fn=None, /, **fns):
        """Transforms the tree in place and returns the config.

        ``walk(lr=lambda c: c.lr * 2)`` sets ``lr`` to ``fn(node)`` on every node
        whose target has an ``lr`` parameter that is set or has a default.

        ``walk(fn)`` calls ``fn(node)`` on every config node, children before
        their parents (post-order), and keeps what it returns: ``None`` or the
        node itself keeps the node (``fn`` may have changed it in place); any
        other value replaces the node wherever it appears. A replacement
        returned for the root config is copied into it, so the object you hold
        stays the config.
        """
        if (fn is None) == (not fns):
            raise ConfigError("walk takes either one function or keyword functions, not both")
        if fn is None:
            for _, node in iter_buildables(self):
                for name, node_fn in fns.items():
                    if _has_value(node, name):
                        setattr(node, name, node_fn(node))
            return self
        result = fold(self, functools.partial(_walk_node, fn))
        if result is not self:
            if not isinstance(result, fdl.Buildable):
                raise ConfigError(
                    f"walk: the function returned {type(result).__name__} for the root config; "
                    "return a config (or None to keep it)"
                )
            self.__setstate__(_copy.copy(result).__getstate__())  # type: ignore[attr-defined]
        return self

    def copy(self: T) -> T:
        """A deep, independent copy; nodes shared inside the original stay shared in the copy."""
        try:
            return _copy.deepcopy(self)
        except RecursionError:
            raise ConfigError(
                f"{deepest_path(self)}: the config is nested too deeply to copy"
            ) from None

    def clone(self: T) -> T:
        """NeMo-Run's name for :meth:`copy`."""
        return self.copy()

    def to_yaml(self) -> str:
        """This config as Hydra-style YAML (see :func:`nemo_run_k8s.to_yaml`)."""
        from nemo_run_k8s.config.yaml_write import to_yaml

        return to_yaml(self)

    def __str__(self) -> str:
        return format_tree(self)


def _has_value(node: fdl.Buildable, name: str) -> bool:
    """The parameter exists on the target and is set or has a default."""
    param = parameters(node.__fn_or_cls__).get(name)
    if param is None:
        return False
    return name in node.__arguments__ or param.default is not inspect.Parameter.empty


def _walk_node(fn: Callable[[Any], Any], path: str, value: Any, kids: Children | None) -> Any:
    """One step of ``walk(fn)``: put the children's results in place, then call ``fn`` on nodes."""
    old = [child for _, child in children(value) or []]
    changed = [(e, new) for (e, new), o in zip(kids or [], old, strict=True) if new is not o]
    if isinstance(value, fdl.Buildable):
        for element, new in changed:
            if isinstance(element, daglish.Attr):
                setattr(value, element.name, new)
            else:  # a positional-only argument
                value[element.index] = new
        returned = fn(value)
        return value if returned is None else returned
    if isinstance(value, (list, dict)):
        for element, new in changed:
            value[element.index if isinstance(element, daglish.Index) else element.key] = new
        return value
    if not changed:
        return value
    traverser = daglish.find_node_traverser(type(value))
    assert traverser is not None  # the value has children
    _, metadata = traverser.flatten(value)
    return traverser.unflatten([new for _, new in kids or []], metadata)


class Config(_TreeOps, fdl.Config[_T], Generic[_T]):
    """A complete configuration of a class or function call: ``fdl.build`` calls it.

    >>> model = run.Config(LlamaModel, config=run.Config(Llama3Config8B, seq_length=8192))
    >>> fdl.build(model)  # LlamaModel(config=Llama3Config8B(seq_length=8192))
    """


class Partial(_TreeOps, fdl.Partial[_T], Generic[_T]):
    """A partially applied call: ``fdl.build`` returns a ``functools.partial``."""
