"""How configs print: ``str(cfg)`` as an indented tree, dry runs as ``path = value`` lines.

``repr(cfg)`` stays fiddle's own one-line form.
"""

from __future__ import annotations

from typing import Any

import fiddle as fdl

from nemo_run_k8s.config.traversal import ROOT, Children, fold, iter_occurrences


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
    """An indented, readable rendering of a config tree (what ``str(cfg)`` shows)."""
    return str(fold(value, _render, shared_once=False))


def _render(path: str, value: Any, kids: Children | None) -> str:
    rendered = [_indent_tail(text) for _, text in kids or []]
    if isinstance(value, fdl.Buildable):
        head = f"{type(value).__name__}[{getattr(value.__fn_or_cls__, '__qualname__', value)}]"
        if not rendered:
            return head + "()"
        names = [element.code.lstrip(".") for element, _ in kids or []]
        inner = "".join(f"  {n}={r},\n" for n, r in zip(names, rendered, strict=True))
        return f"{head}(\n{inner})"
    if type(value) in (list, tuple) and any(isinstance(v, fdl.Buildable) for v in value):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        inner = "".join(f"  {r},\n" for r in rendered)
        return f"{open_}\n{inner}{close}"
    return repr(value)


def _indent_tail(text: str) -> str:
    """Indents every line but the first by one level (the first follows ``name=``)."""
    return text.replace("\n", "\n  ")
