"""NeMo-Run recipes run unchanged (issue 19): autoconvert nesting, configs returned by a body,
positional arguments, ``clone()``, dataclass arguments and optional config defaults."""

from __future__ import annotations

import functools
from typing import Annotated

import fiddle as fdl
import pytest

import nemo_run_k8s as run
from tests.config import recipes
from tests.config.recipes import Counter, Data, Job, Model, NestedData, Optimizer, Trainer

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


# --------------------------------------------------------------------------- clone


def test_clone_is_a_deep_independent_copy():
    cfg = run.Config(Trainer, model=run.Config(Model, hidden=8))
    twin = cfg.clone()
    twin.model.hidden = 16
    assert cfg.model.hidden == 8
    assert twin == run.Config(Trainer, model=run.Config(Model, hidden=16))
    assert run.Partial(Model).clone() == run.Partial(Model)


# --------------------------------------------------------------------------- dataclass arguments


def test_a_dataclass_instance_argument_becomes_a_config_of_it():
    cfg = run.Partial(NestedData, data=Data("train.bin", 1))
    assert cfg.data == run.Config(Data, path="train.bin", batch_size=1)
    assert type(cfg.data) is run.Config


def test_a_converted_dataclass_is_reached_by_broadcast_walk_and_yaml():
    cfg = run.Partial(recipes.load, data=NestedData(Data("t", 1)))
    cfg.broadcast(batch_size=5)
    cfg.walk(path=lambda node: node.path + ".bin")
    assert cfg.data.data.batch_size == 5
    assert run.to_yaml(cfg) == (
        "_target_: tests.config.recipes.load\n"
        "_partial_: true\n"
        "data:\n"
        "  _target_: tests.config.recipes.NestedData\n"
        "  data:\n"
        "    _target_: tests.config.recipes.Data\n"
        "    path: t.bin\n"
        "    batch_size: 5\n"
        "  shuffle: true\n"
    )
    assert fdl.build(cfg)(value=7) == ("t.bin", 5, 7)


def test_dataclass_instances_set_later_or_inside_lists_are_converted_too():
    cfg = run.Config(Trainer, model=run.Config(Model))
    cfg.model = Model(hidden=3)
    assert cfg.model == run.Config(Model, hidden=3, layers=2)
    listed = run.Config(NestedData, data=[Data("a", 1)])
    assert listed.data == [run.Config(Data, path="a", batch_size=1)]
    assert fdl.build(cfg) == Trainer(model=Model(hidden=3))


def test_a_dataclass_with_init_false_fields_is_refused_with_the_fix():
    with pytest.raises(run.ConfigError) as err:
        run.Config(NestedData, data=Counter(start=1))
    message = str(err.value)
    assert "seen cannot be passed to Counter() (init=False)" in message
    assert "Pass run.Config(Counter, ...) instead" in message


def test_a_dataclass_class_as_an_argument_stays_a_class():
    cfg = run.Config(NestedData, data=Data)
    assert cfg.data is Data


# ------------------------------------------------------------------- optional config defaults


def test_an_unset_optional_config_parameter_gets_the_default_config():
    cfg = run.Config(Job, model=run.Config(Model))
    assert cfg.optimizer == run.Config(Optimizer)
    assert type(cfg.optimizer) is run.Config
    assert cfg.scheduler is None  # a plain Optional stays unset
    assert fdl.build(cfg).optimizer == Optimizer(lr=0.01)


def test_a_given_optional_config_parameter_is_kept():
    cfg = run.Config(Job, model=run.Config(Model), optimizer=run.Config(Optimizer, lr=1.0))
    assert cfg.optimizer.lr == 1.0
    assert run.Config(Job, model=run.Config(Model), optimizer=None).optimizer is None


def test_the_default_config_can_be_broadcast_into():
    cfg = run.Config(Job, model=run.Config(Model)).broadcast(lr=0.5)
    assert fdl.build(cfg).optimizer == Optimizer(lr=0.5)


def test_a_partial_in_the_annotation_gives_a_default_partial():
    def schedule(optimizer: Annotated[Optimizer | None, run.Partial[Optimizer]] = None):
        return optimizer

    cfg = run.Config(schedule)
    assert type(cfg.optimizer) is run.Partial
    assert fdl.build(cfg)(lr=0.3) == Optimizer(lr=0.3)
