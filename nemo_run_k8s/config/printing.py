"""How configs print: ``str(cfg)`` as an indented tree, dry runs as ``path = value`` lines.

``repr(cfg)`` stays fiddle's own one-line form.
"""

from __future__ import annotations

from typing import Any

import fiddle as fdl
from fiddle import daglish

from nemo_run_k8s.config.traversal import ROOT, children, iter_occurrences, iter_values


def target_name(fn: Any) -> str:
    """``module.QualName`` of a config target (what YAML's ``_target_`` holds)."""
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    return f"{module}.{qualname}"


def flatten(cfg: Any) -> list[tuple[str, Any]]:
    """``(path, value)`` for every leaf value set in the tree, and each node's target.

    Paths drop the ``<root>`` prefix: ``optimizer.lr``, ``layers[0].width``;
    a node's target is listed as ``path`` = ``Config[module.Name]``. A node
    shared by several parents is listed in full at its first path; later paths
    read ``<shared with first.path>``.
    """
    rows: list[tuple[str, Any]] = []
    for path, value, first in iter_occurrences(cfg):
        short = _short(path)
        if first is not None:
            rows.append((short, _Label(f"<shared with {_short(first)}>")))
        elif isinstance(value, fdl.Buildable):
            label = f"{type(value).__name__}[{target_name(value.__fn_or_cls__)}]"
            rows.append((short, _Label(label)))
        elif not isinstance(value, (list, tuple, dict)) or not value:
            rows.append((short, value))
    return rows


def _short(path: str) -> str:
    return path[len(ROOT) :].lstrip(".") or "."


class _Label:
    """A flattened row's value that prints as its text, unquoted."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def format_flat(cfg: Any) -> str:
    """The tree as ``path = value`` lines, for dry runs and ``show``."""
    return "\n".join(f"{path} = {value!r}" for path, value in flatten(cfg))


def format_tree(value: Any) -> str:
    """An indented, readable rendering of a config tree (what ``str(cfg)`` shows).

    Config nodes, and lists or tuples holding config nodes, open an indented
    block; anything else prints as its ``repr``. A shared node is written out
    at each place.
    """
    for _ in iter_values(value):  # a tree that contains itself is an error naming the path
        pass
    lines: list[str] = []
    # Work items: a value to render (value, "name=" prefix, depth, suffix), or a finished line.
    stack: list[tuple[Any, str, int, str] | str] = [(value, "", 0, "")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            lines.append(item)
            continue
        v, prefix, depth, suffix = item
        pad = "  " * depth
        if isinstance(v, fdl.Buildable):
            head = f"{type(v).__name__}[{getattr(v.__fn_or_cls__, '__qualname__', v)}]"
            kids = children(v) or []
            if not kids:
                lines.append(f"{pad}{prefix}{head}(){suffix}")
                continue
            lines.append(f"{pad}{prefix}{head}(")
            stack.append(f"{pad}){suffix}")
            stack.extend((c, f"{_name(e)}=", depth + 1, ",") for e, c in reversed(kids))
        elif type(v) in (list, tuple) and any(isinstance(c, fdl.Buildable) for c in v):
            open_, close = ("[", "]") if type(v) is list else ("(", ")")
            lines.append(f"{pad}{prefix}{open_}")
            stack.append(f"{pad}{close}{suffix}")
            stack.extend((c, "", depth + 1, ",") for c in reversed(v))
        else:
            lines.append(f"{pad}{prefix}{v!r}{suffix}")
    return "\n".join(lines)


def _name(element: daglish.PathElement) -> str:
    return element.name if isinstance(element, daglish.Attr) else str(element.code.strip("[]"))
