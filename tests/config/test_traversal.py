"""The one config traversal (issue 15): paths, shared nodes, cycles and deep trees."""

from __future__ import annotations

import collections
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiddle as fdl
import pytest

import nemo_run_k8s as run
from nemo_run_k8s.config.printing import format_flat
from nemo_run_k8s.config.traversal import iter_values
from tests.config.standins import AdamW, DataModule, TrainingJob
from tests.conftest import REPO_ROOT, child_env


@dataclass
class Node:
    child: Any = None
    size: int = 1


def positional(a, /, b=0):
    return a + b


Pair = collections.namedtuple("Pair", "left right")


def test_paths_read_like_fiddles_build_errors():
    cfg = run.Config(
        TrainingJob,
        model=run.Config(positional, 1, b=2),
        data=[run.Config(DataModule), {"k": (3, Pair(4, 5))}],
    )
    paths = [path for path, _ in iter_values(cfg)]
    assert paths == [
        "<root>",
        "<root>.model",
        "<root>.model[0]",
        "<root>.model.b",
        "<root>.data",
        "<root>.data[0]",
        "<root>.data[1]",
        "<root>.data[1]['k']",
        "<root>.data[1]['k'][0]",
        "<root>.data[1]['k'][1]",
        "<root>.data[1]['k'][1].left",
        "<root>.data[1]['k'][1].right",
    ]
    assert dict(iter_values(cfg))["<root>.data[1]['k'][1].right"] == 5


def test_a_shared_node_is_visited_once_at_its_first_path():
    shared = run.Config(AdamW, lr=0.1)
    cfg = run.Config(TrainingJob, model=[shared, shared], optimizer=shared)
    found = [(p, v) for p, v in iter_values(cfg) if v is shared]
    assert found == [("<root>.model[0]", shared)]
    cfg.broadcast(lr=0.2)
    assert shared.lr == 0.2


def cyclic() -> run.Config:
    cfg = run.Config(Node, child=run.Config(Node))
    cfg.child.child = [cfg]
    return cfg


@pytest.mark.parametrize(
    "use",
    [
        lambda c: list(iter_values(c)),
        lambda c: c.broadcast(size=2),
        lambda c: c.walk(lambda n: None),
        lambda c: run.to_yaml(c),
        lambda c: format_flat(c),
        str,
    ],
    ids=["iter_values", "broadcast", "walk", "to_yaml", "format_flat", "str"],
)
def test_a_config_that_contains_itself_is_a_config_error_naming_the_path(use):
    with pytest.raises(run.ConfigError) as err:
        use(cyclic())
    assert str(err.value).startswith(
        "<root>.child.child[0]: the config contains itself (this value is <root>"
    )


def deep(levels: int) -> run.Config:
    cfg = run.Config(Node, size=0)
    for _ in range(levels):
        cfg = run.Config(Node, child=cfg)
    return cfg


def test_a_deep_tree_is_walked_without_recursion_errors():
    levels = sys.getrecursionlimit() * 3
    cfg = deep(levels)
    deepest = "<root>" + ".child" * levels
    assert (f"{deepest}.size", 0) in list(iter_values(cfg))
    cfg.broadcast(size=7)
    cfg.walk(lambda node: setattr(node, "size", node.size + 1))
    assert dict(iter_values(cfg))[f"{deepest}.size"] == 8
    assert f"{deepest[len('<root>.') :]}.size = 8" in format_flat(cfg).splitlines()
    assert str(cfg).splitlines()[levels : levels + 3] == [
        "  " * levels + "child=Config[Node](",
        "  " * (levels + 1) + "size=8,",
        "  " * levels + "),",
    ]


@pytest.mark.parametrize(
    ("use", "what"),
    [(lambda c: c.copy(), "copy"), (run.to_yaml, "write as YAML")],
    ids=["copy", "to_yaml"],
)
def test_a_tree_too_deep_for_python_is_a_config_error_naming_its_deepest_path(use, what):
    levels = sys.getrecursionlimit() * 3
    with pytest.raises(run.ConfigError) as err:
        use(deep(levels))
    assert str(err.value) == (
        "<root>" + ".child" * levels + f".size: the config is nested too deeply to {what}"
    )


def test_walk_rebuilds_a_tuple_whose_items_were_replaced():
    cfg = run.Config(TrainingJob, model=(run.Config(DataModule), 2))
    cfg.walk(lambda n: run.Config(AdamW) if n.__fn_or_cls__ is DataModule else None)
    assert cfg.model == (run.Config(AdamW), 2)
    assert fdl.build(cfg).model == (AdamW(), 2)


def test_the_config_room_uses_no_private_fiddle_module():
    for source in (REPO_ROOT / "nemo_run_k8s" / "config").glob("*.py"):
        assert "fiddle._src" not in source.read_text(), source.name


def test_importing_the_config_package_or_script_loads_no_fiddle():
    code = (
        "import sys, nemo_run_k8s.config, nemo_run_k8s.config.script\n"
        "print('fiddle' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(REPO_ROOT),
    )
    assert out.stdout.strip() == "False"
