"""Walking a config tree: the one traversal that every config helper uses.

Which values have children, in which order, and how a child's path reads come
from fiddle's own traversal, :mod:`fiddle.daglish`: a ``Buildable``'s arguments
(``.name``, and ``[0]`` for positional-only ones), list and tuple items
(``[0]``), dict entries (``['key']``), namedtuple fields and whatever else a
library registers with daglish. Paths start at ``<root>``, so a path reads
like fiddle's build errors: ``<root>.model.layers[0]``.

The walk keeps its own stack instead of recursing as daglish's ``Traversal``
does, so a deep tree never ends in ``RecursionError``, and a tree that contains
itself is a :class:`~nemo_run_k8s.errors.ConfigError` naming the path where the
cycle closes.

- :func:`iter_values` is pre-order (parents first), each config node once;
- :func:`fold` is post-order (children first) and rebuilds the tree bottom-up,
  what ``walk`` and YAML writing need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fiddle as fdl
from fiddle import daglish

from nemo_run_k8s.errors import ConfigError

ROOT = "<root>"

#: ``(path element, child)`` pairs of a value, in daglish's order.
Children = list[tuple[daglish.PathElement, Any]]


def children(value: Any) -> Children | None:
    """The value's children, or None when daglish does not traverse its type (a leaf)."""
    kind = type(value)
    if kind is list or kind is tuple:  # daglish's own elements, without its registry look-up
        return [(daglish.Index(i), child) for i, child in enumerate(value)]
    if kind is dict:
        return [(daglish.Key(key), child) for key, child in value.items()]
    traverser = daglish.find_node_traverser(kind)
    if traverser is None:
        return None
    values, _ = traverser.flatten(value)
    return list(zip(traverser.path_elements(value), values, strict=True))


def iter_values(value: Any, path: str = ROOT) -> Iterator[tuple[str, Any]]:
    """Yields ``(path, value)`` for ``value`` and everything inside it, parents first.

    Descends into config arguments (only those set explicitly), lists,
    tuples, dicts and other daglish-traversable containers. A config node
    reached twice (shared) is yielded once, at the first path that reaches it.
    """
    for p, v, first, _ in walk(value, path):
        if first is None:
            yield p, v


def iter_buildables(value: Any) -> Iterator[tuple[str, fdl.Buildable]]:
    """Yields ``(path, node)`` for every config node in the tree, parents first."""
    for path, v in iter_values(value):
        if isinstance(v, fdl.Buildable):
            yield path, v


def iter_occurrences(value: Any, path: str = ROOT) -> Iterator[tuple[str, Any, str | None]]:
    """Like :func:`iter_values`, and also each later place a shared config node appears.

    Yields ``(path, value, first_path)``: ``first_path`` is None where a value
    is met for the first time, else the path where the shared node was
    yielded (its children are not visited again).
    """
    for p, v, first, _ in walk(value, path):
        yield p, v, first


def walk(
    value: Any, path: str = ROOT, *, leaf: Callable[[Any], bool] | None = None
) -> Iterator[tuple[str, Any, str | None, int]]:
    """The walk under every other: ``(path, value, first_path, depth)``, parents first.

    ``first_path`` is as in :func:`iter_occurrences`; ``depth`` counts the
    levels below ``value``. A value for which ``leaf(value)`` is true is
    yielded but not entered (the bundle does not walk a list of a million
    numbers item by item).
    """
    first_path: dict[int, str] = {}  # config nodes already yielded
    enclosing: dict[int, str] = {}  # containers around the current value -> their paths
    leave = object()
    stack: list[tuple[Any, str, object | None, int]] = [(value, path, None, 0)]
    while stack:
        v, p, marker, depth = stack.pop()
        if marker is leave:
            del enclosing[id(v)]
            continue
        if id(v) in enclosing:
            raise _cycle(p, enclosing[id(v)])
        if isinstance(v, fdl.Buildable):
            if id(v) in first_path:
                yield p, v, first_path[id(v)], depth
                continue
            first_path[id(v)] = p
        yield p, v, None, depth
        if leaf is not None and leaf(v):
            continue
        kids = children(v)
        if kids:
            enclosing[id(v)] = p
            stack.append((v, p, leave, depth))
            stack.extend(
                (child, p + element.code, None, depth + 1) for element, child in reversed(kids)
            )


def fold(
    value: Any,
    fn: Callable[[str, Any, Children | None], Any],
    *,
    path: str = ROOT,
    shared_once: bool = True,
) -> Any:
    """Rebuilds the tree bottom-up: returns ``fn`` of the root.

    ``fn(path, value, new_children)`` is called for every value, children
    before their parents; ``new_children`` holds what ``fn`` returned for each
    child, with the child's path element (None for a leaf). With
    ``shared_once`` a value reached twice is folded once and its result reused;
    without it, each place is folded on its own (YAML writes a shared node at
    each place).
    """
    memo: dict[int, Any] = {}
    enclosing: dict[int, str] = {}
    # A frame: [value, path, children, results so far].
    frames: list[tuple[Any, str, Children, Children]] = []

    def enter(v: Any, p: str) -> tuple[bool, Any]:
        """Starts ``v``: (True, result) when it is done at once, else pushes a frame."""
        if shared_once and id(v) in memo:
            return True, memo[id(v)]
        if id(v) in enclosing:
            raise _cycle(p, enclosing[id(v)])
        kids = children(v)
        if not kids:
            return True, _finish(v, p, kids)
        enclosing[id(v)] = p
        frames.append((v, p, kids, []))
        return False, None

    def _finish(v: Any, p: str, new_kids: Children | None) -> Any:
        result = fn(p, v, new_kids)
        if shared_once and _memoizable(v):
            memo[id(v)] = result
        return result

    done, result = enter(value, path)
    while not done:
        v, p, kids, results = frames[-1]
        while len(results) < len(kids):
            element, child = kids[len(results)]
            child_done, child_result = enter(child, p + element.code)
            if not child_done:
                break
            results.append((element, child_result))
        else:
            frames.pop()
            del enclosing[id(v)]
            result = _finish(v, p, results)
            if not frames:
                done = True
            else:
                parent_kids, parent_results = frames[-1][2], frames[-1][3]
                parent_results.append((parent_kids[len(parent_results)][0], result))
    return result


def _memoizable(value: Any) -> bool:
    """Whether a value is worth remembering by id (containers and config nodes)."""
    return daglish.is_traversable_type(type(value)) or isinstance(value, fdl.Buildable)


def deepest_path(value: Any) -> str:
    """The longest path in the tree (for messages about trees too deep to handle)."""
    return max((p for p, _ in iter_values(value)), key=len, default=ROOT)


def _cycle(path: str, ancestor: str) -> ConfigError:
    return ConfigError(
        f"{path}: the config contains itself (this value is {ancestor}, which encloses it). "
        "A config is a tree: give this place its own config, e.g. a .copy() of it."
    )
