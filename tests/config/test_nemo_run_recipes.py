"""NeMo-Run recipes run unchanged (issue 19): autoconvert nesting, configs returned by a body,
positional arguments."""

from __future__ import annotations

import functools

import fiddle as fdl

import nemo_run_k8s as run
from tests.config import recipes
from tests.config.recipes import Model, Trainer

# --------------------------------------------------------------------------- nested autoconvert


def test_an_autoconvert_function_calling_another_nests_plain_configs():
    cfg = recipes.my_trainer()
    assert cfg == run.Config(Trainer, model=run.Config(Model, hidden=1000), max_steps=50)
    assert type(cfg.model) is run.Config
    assert cfg.model.__fn_or_cls__ is Model


def test_a_nested_autoconvert_recipe_builds_real_objects():
    assert fdl.build(recipes.my_trainer()) == Trainer(model=Model(hidden=1000), max_steps=50)


def test_a_nested_recipe_is_a_tree_the_helpers_reach_into():
    cfg = recipes.my_trainer().broadcast(hidden=64)
    assert cfg.model.hidden == 64
    assert "model:\n  _target_: tests.config.recipes.Model\n  hidden: 64\n" in cfg.to_yaml()


# --------------------------------------------------------------------------- returned configs


def test_a_body_that_returns_a_config_returns_it_unchanged():
    cfg = recipes.model_as_config()
    assert cfg == run.Config(Model, hidden=500)
    assert type(cfg) is run.Config
    assert fdl.build(cfg) == Model(hidden=500)


# --------------------------------------------------------------------------- partial=True


def test_partial_autoconvert_with_positional_only_and_star_args():
    cfg = recipes.scaled_recipe()
    assert type(cfg) is run.Partial
    built = fdl.build(cfg)
    assert isinstance(built, functools.partial)
    assert built() == 2 * 3 + 4 + 5


def test_partial_autoconvert_makes_only_the_top_node_partial():
    cfg = recipes.trainer_recipe()
    assert type(cfg) is run.Partial
    assert type(cfg.model) is run.Config
    assert fdl.build(cfg)(max_steps=3) == Trainer(model=Model(hidden=1000), max_steps=3)
