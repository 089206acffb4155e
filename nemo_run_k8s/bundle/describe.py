"""How a task is walked and described for a bundle: in bounded time and size, whatever it holds.

A task may carry a 100 MB ``bytes`` argument or a list of five million numbers.
Pickling such a task takes a fraction of a second; walking it value by value
(for the by-value scan, the flattened config, the YAML) took minutes and wrote
a manifest hundreds of MB long. So here:

- :func:`iter_values` is the config room's walk (``config.traversal``: its own
  stack, so a deep tree never ends in ``RecursionError``, and a tree that
  contains itself is a ConfigError naming the path) that never enters a
  *plain* container, a list, tuple or dict of numbers, strings, bytes and None
  only, found out in C (the set of its item types) rather than item by item.
- :func:`flattened` gives the ``path = value`` lines of the manifest, the dry
  run and ``show``, as config printing does, except that a long value is
  summarised by type, size and content hash
  (``data = <bytes: 100,000,000 bytes, sha256:1f0a...>``), a plain container of
  more than :data:`ITEMS_SHOWN` items is one such line, the process environment
  is never shown, and the text stops at :data:`MAX_TEXT` characters.
- :func:`too_large_for_yaml` says why ``config.yaml`` is left out: a summary is
  not the value, so the YAML (meant to be loaded again) is written whole or not
  at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import fiddle as fdl

from nemo_run_k8s.config import traversal
from nemo_run_k8s.config.traversal import ROOT

#: Items of a plain container listed one per line; a longer one is summarised.
ITEMS_SHOWN = 32
#: A value whose text is longer than this is summarised.
VALUE_CHARS = 200
#: The flattened config stops here (the manifest, the dry run and ``show`` print it).
MAX_TEXT = 32 * 1024
#: config.yaml is left out for a plain container longer than this, or a longer string.
YAML_MAX_ITEMS = 10_000
YAML_MAX_CHARS = 64 * 1024

_SCALARS = frozenset({int, float, complex, bool, str, bytes, type(None)})
_ENVIRON = type(os.environ)
_MEMO = threading.local()


@contextlib.contextmanager
def remembering() -> Iterator[None]:
    """Within this block, each large container's item types are found once, not per walk.

    The memo holds the containers themselves, so their ids stay theirs; it is
    dropped at the end of the block (one bundle being written, in this thread).
    """
    outer = getattr(_MEMO, "types", None)
    _MEMO.types = {} if outer is None else outer
    try:
        yield
    finally:
        _MEMO.types = outer


def item_types(value: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> frozenset[type]:
    """The types of a container's items (a dict's keys and values), found in C."""
    memo = getattr(_MEMO, "types", None)
    if memo is not None and id(value) in memo:
        return memo[id(value)][1]
    if isinstance(value, dict):
        kinds = frozenset(map(type, value)) | frozenset(map(type, value.values()))
    else:
        kinds = frozenset(map(type, value))
    if memo is not None and len(value) > ITEMS_SHOWN:
        memo[id(value)] = (value, kinds)
    return kinds


def is_plain(value: Any) -> bool:
    """A list, tuple or dict holding only numbers, strings, bytes and None."""
    return isinstance(value, (list, tuple, dict)) and item_types(value) <= _SCALARS


def walk(value: Any, plain_shown: int = 0) -> Iterator[tuple[str, Any, str | None, int]]:
    """The config walk (``config.traversal.walk``), with plain containers as leaves.

    A plain container with more than ``plain_shown`` items is yielded but not
    entered: its item types are found in C, not item by item.
    """

    def leaf(v: Any) -> bool:
        return isinstance(v, (list, tuple, dict)) and len(v) > plain_shown and is_plain(v)

    return traversal.walk(value, leaf=leaf)


def iter_values(task: Any) -> Iterator[tuple[str, Any]]:
    """``(path, value)`` of every value that can hold code or configs, each config once."""
    for path, value, first, _ in walk(task):
        if first is None:
            yield path, value


def deepest(task: Any) -> tuple[str, int]:
    """The path that lies deepest in the tree, and how many levels down it is."""
    best = (ROOT, 0)
    for path, _, _, depth in walk(task):
        if depth > best[1]:
            best = (path, depth)
    return best


def summary(value: Any) -> str | None:
    """``<type: size, sha256:...>`` for a value too long to show; None for a short one."""
    if isinstance(value, _ENVIRON):
        return f"<os.environ: {len(value)} variables, not shown>"
    if isinstance(value, (bytes, bytearray)):
        if len(value) <= VALUE_CHARS // 2:
            return None
        return f"<{type(value).__name__}: {len(value):,} bytes, sha256:{_sha(bytes(value))}>"
    if isinstance(value, str):
        if len(value) <= VALUE_CHARS:
            return None
        data = value.encode("utf-8", "surrogatepass")
        return f"<str: {len(value):,} characters, sha256:{_sha(data)}>"
    if isinstance(value, (list, tuple, dict)) and is_plain(value):
        of = ", ".join(sorted(k.__name__ for k in item_types(value)))
        digest = _sha(pickle.dumps(value, protocol=4))
        return f"<{type(value).__name__}: {len(value):,} items of {of}, sha256:{digest}>"
    text = repr(value)
    if len(text) <= VALUE_CHARS:
        return None
    return (
        f"<{type(value).__name__}: {len(text):,} characters as text, "
        f"sha256:{_sha(text.encode('utf-8', 'surrogatepass'))}>"
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def flattened(task: Any) -> str:
    """The task as ``path = value`` lines, long values summarised, at most :data:`MAX_TEXT`."""
    lines: list[str] = []
    size = 0
    for path, value, first, _ in walk(task, plain_shown=ITEMS_SHOWN):
        short = path[len(ROOT) :].lstrip(".") or "."
        if first is not None:
            text = f"<shared with {first[len(ROOT) :].lstrip('.') or '.'}>"
        elif isinstance(value, fdl.Buildable):
            text = f"{type(value).__name__}[{_target_name(value.__fn_or_cls__)}]"
        elif (
            isinstance(value, (list, tuple, dict))
            and value
            and not (len(value) > ITEMS_SHOWN and is_plain(value))
        ):
            continue  # its items have lines of their own
        else:
            text = summary(value) or repr(value)
        line = f"{short} = {text}"
        if size + len(line) > MAX_TEXT:
            lines.append(f"... (cut at {MAX_TEXT // 1024} KiB: the task holds more values)")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def too_large_for_yaml(task: Any) -> str | None:
    """Why the task's YAML would be too large to write, or None when it is not."""
    for path, value, first, _ in walk(task):
        if first is not None:
            continue
        if isinstance(value, (list, tuple, dict)) and len(value) > YAML_MAX_ITEMS:
            return f"{path} holds {len(value):,} items"
        if isinstance(value, (str, bytes, bytearray)) and len(value) > YAML_MAX_CHARS:
            return f"{path} is {len(value):,} characters long"
        if isinstance(value, (list, tuple, dict)) and is_plain(value):
            items = value.values() if isinstance(value, dict) else value
            chars = sum(len(v) for v in items if isinstance(v, (str, bytes)))
            if chars > YAML_MAX_CHARS:
                return f"{path} holds {chars:,} characters of strings"
    return None


def _target_name(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "?")
    return f"{module}.{qualname}"
