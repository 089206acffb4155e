"""``run.Config``, ``run.Partial`` and ``@run.autoconvert``.

``Config`` and ``Partial`` subclass fiddle's, so ``fdl.build``, fiddle's
printing and serialization accept them unchanged. They add a few tree-wide
helpers (:meth:`~_TreeOps.broadcast`, :meth:`~_TreeOps.walk`,
:meth:`~_TreeOps.copy`, :meth:`~_TreeOps.to_yaml`) that visit every config
node of the tree: the node itself and every ``Buildable`` reachable through its
arguments, including inside lists, tuples and dicts. A node shared by several
parents is visited once.
"""

from __future__ import annotations

import copy as _copy
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

import fiddle as fdl

from nemo_run_k8s.errors import ConfigError

T = TypeVar("T", bound="fdl.Buildable")

ROOT = "<root>"


# --------------------------------------------------------------------------- traversal


def iter_values(value: Any, path: str = ROOT) -> Iterator[tuple[str, Any]]:
    """Yields ``(path, value)`` for ``value`` and everything inside it, parents first.

    Descends into Buildable arguments (only those set explicitly), lists,
    tuples and dicts. A Buildable reached twice (shared) is yielded once, at
    the first path that reaches it.
    """
    seen: set[int] = set()

    def visit(v: Any, p: str) -> Iterator[tuple[str, Any]]:
        if isinstance(v, fdl.Buildable):
            if id(v) in seen:
                return
            seen.add(id(v))
        yield p, v
        for child_path, child in _children(v, p):
            yield from visit(child, child_path)

    yield from visit(value, path)


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, fdl.Buildable):
        for name, child in value.__arguments__.items():
            yield f"{path}.{name}" if isinstance(name, str) else f"{path}[{name}]", child
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield f"{path}[{i}]", child
    elif isinstance(value, dict):
        for key, child in value.items():
            yield f"{path}[{key!r}]", child


def iter_buildables(cfg: Any) -> Iterator[tuple[str, fdl.Buildable]]:
    """Yields ``(path, node)`` for every config node in the tree, parents first."""
    for path, value in iter_values(cfg):
        if isinstance(value, fdl.Buildable):
            yield path, value


@functools.lru_cache(maxsize=1024)
def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
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
    return name in _parameters(node.__fn_or_cls__)


def target_name(fn: Any) -> str:
    """``module.QualName`` of a config target (what YAML's ``_target_`` holds)."""
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    return f"{module}.{qualname}"


# --------------------------------------------------------------------------- tree helpers


class _TreeOps:
    """Tree-wide helpers shared by :class:`Config` and :class:`Partial`."""

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
            accepted = sorted({p for n in nodes for p in _parameters(n.__fn_or_cls__)})
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
        result = _walk_post_order(self, fn, {})
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
        return _copy.deepcopy(self)

    def to_yaml(self) -> str:
        """This config as Hydra-style YAML (see :func:`nemo_run_k8s.to_yaml`)."""
        from nemo_run_k8s.config.yaml_io import to_yaml

        return to_yaml(self)

    def __str__(self) -> str:
        return format_tree(self)


def _has_value(node: fdl.Buildable, name: str) -> bool:
    """The parameter exists on the target and is set or has a default."""
    param = _parameters(node.__fn_or_cls__).get(name)
    if param is None:
        return False
    return name in node.__arguments__ or param.default is not inspect.Parameter.empty


def _walk_post_order(value: Any, fn: Callable[[Any], Any], memo: dict[int, Any]) -> Any:
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, fdl.Buildable):
        for name, child in list(value.__arguments__.items()):
            new_child = _walk_post_order(child, fn, memo)
            if new_child is not child:
                setattr(value, name, new_child)
        returned = fn(value)
        result = value if returned is None else returned
        memo[id(value)] = result
        return result
    if isinstance(value, list):
        for i, child in enumerate(value):
            value[i] = _walk_post_order(child, fn, memo)
        return value
    if isinstance(value, tuple):
        new = [_walk_post_order(child, fn, memo) for child in value]
        if all(a is b for a, b in zip(new, value, strict=True)):
            return value
        return type(value)(*new) if hasattr(value, "_fields") else type(value)(new)
    if isinstance(value, dict):
        for key, child in value.items():
            value[key] = _walk_post_order(child, fn, memo)
        return value
    return value


class Config(_TreeOps, fdl.Config[Any]):
    """A complete configuration of a class or function call: ``fdl.build`` calls it.

    >>> model = run.Config(LlamaModel, config=run.Config(Llama3Config8B, seq_length=8192))
    >>> fdl.build(model)  # LlamaModel(config=Llama3Config8B(seq_length=8192))
    """


class Partial(_TreeOps, fdl.Partial[Any]):
    """A partially applied call: ``fdl.build`` returns a ``functools.partial``."""


# --------------------------------------------------------------------------- autoconvert


@overload
def autoconvert(fn: Callable[..., Any], /) -> Callable[..., Config]: ...


@overload
def autoconvert(*, partial: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


def autoconvert(fn=None, /, *, partial=False):
    """Turns a function that constructs objects into one that returns their config.

    Calling the decorated function constructs nothing: every call inside it
    becomes a ``run.Config`` node (fiddle's ``auto_config`` rewrites the
    function). With ``partial=True`` the top node is a ``run.Partial``.

    Control flow (``if``, loops, comprehensions) is not supported: write a
    plain function that returns ``run.Config`` objects instead.
    """
    if fn is None:
        return functools.partial(autoconvert, partial=partial)
    from fiddle._src.experimental import auto_config as _ac

    types = _ac.ConfigTypes(config_cls=Config, partial_cls=Partial, arg_factory_cls=fdl.ArgFactory)
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        auto = _ac.auto_config(
            fn,
            experimental_config_types=types,
            # We check the result ourselves, with a message that says what to return.
            experimental_result_must_contain_buildable=False,
        )
    except OSError as err:  # inspect.getsource failed
        raise ConfigError(
            f"@run.autoconvert cannot read the source of {name} ({err}); it rewrites the "
            "function's source, so define the function in a .py file, not at a prompt."
        ) from err
    except _ac.UnsupportedLanguageConstructError as err:
        source_line = (err.text or "").strip()
        raise ConfigError(
            f"@run.autoconvert cannot convert {name}: {_construct(err.msg)} "
            f"({err.filename}, line {err.lineno}: {source_line}). autoconvert records calls, "
            "it cannot evaluate branches or loops. Workaround: write a plain function that "
            "does the logic in Python and returns run.Config(...) objects."
        ) from err

    @functools.wraps(fn)
    def make_config(*args: Any, **kwargs: Any) -> fdl.Buildable:
        cfg = auto.as_buildable(*args, **kwargs)
        if not isinstance(cfg, fdl.Buildable):
            raise ConfigError(
                f"@run.autoconvert: {fn.__qualname__} returned {type(cfg).__name__}, not a call "
                "to configure; return the object you want built, e.g. Model(...)"
            )
        if partial and not isinstance(cfg, Partial):
            cfg = Partial(cfg.__fn_or_cls__, **cfg.__arguments__)
        return cfg

    return make_config


_CONSTRUCTS = {
    "If": "an if/else statement",
    "IfExp": "a conditional expression (x if c else y)",
    "For": "a for loop",
    "AsyncFor": "an async for loop",
    "While": "a while loop",
    "ListComp": "a list comprehension",
    "SetComp": "a set comprehension",
    "DictComp": "a dict comprehension",
    "GeneratorExp": "a generator expression",
    "Try": "a try statement",
    "With": "a with statement",
}


def _construct(msg: str) -> str:
    """Says which construct an auto_config message is about, in plain words."""
    match = re.search(r"\((\w+)\)", msg)
    if match and match.group(1) in _CONSTRUCTS:
        return f"{_CONSTRUCTS[match.group(1)]} is not supported"
    return msg.rstrip(".").replace(" by auto_config", "")


# --------------------------------------------------------------------------- printing


def flatten(cfg: Any) -> list[tuple[str, Any]]:
    """``(path, value)`` for every leaf value set in the tree, and each node's target.

    Paths drop the ``<root>`` prefix: ``optimizer.lr``, ``layers[0].width``;
    a node's target is listed as ``path`` = ``Config[module.Name]``. A node
    shared by several parents is listed in full at its first path; later paths
    read ``<shared with first.path>``.
    """
    rows: list[tuple[str, Any]] = []
    first_path: dict[int, str] = {}

    def visit(value: Any, path: str) -> None:
        short = path[len(ROOT) :].lstrip(".") or "."
        if isinstance(value, fdl.Buildable):
            if id(value) in first_path:
                rows.append((short, _Label(f"<shared with {first_path[id(value)]}>")))
                return
            first_path[id(value)] = short
            label = f"{type(value).__name__}[{target_name(value.__fn_or_cls__)}]"
            rows.append((short, _Label(label)))
        elif not isinstance(value, (list, tuple, dict)) or not value:
            rows.append((short, value))
        for child_path, child in _children(value, path):
            visit(child, child_path)

    visit(cfg, ROOT)
    return rows


class _Label:
    """A flattened row's value that prints as its text, unquoted."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def format_flat(cfg: Any) -> str:
    """The tree as ``path = value`` lines, for dry runs and ``show``."""
    return "\n".join(f"{path} = {value!r}" for path, value in flatten(cfg))


def format_tree(value: Any, indent: int = 0) -> str:
    """An indented, readable rendering of a config tree (what ``str(cfg)`` shows)."""
    pad = "  " * (indent + 1)
    if isinstance(value, fdl.Buildable):
        head = f"{type(value).__name__}[{getattr(value.__fn_or_cls__, '__qualname__', value)}]"
        args = value.__arguments__
        if not args:
            return head + "()"
        inner = ",\n".join(f"{pad}{k}={format_tree(v, indent + 1)}" for k, v in args.items())
        return f"{head}(\n{inner},\n{'  ' * indent})"
    if isinstance(value, (list, tuple)) and any(isinstance(v, fdl.Buildable) for v in value):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        inner = ",\n".join(pad + format_tree(v, indent + 1) for v in value)
        return f"{open_}\n{inner},\n{'  ' * indent}{close}"
    return repr(value)
