"""The guide's "Configuration Utilities": broadcast, walk, and copy."""

from __future__ import annotations

import fiddle as fdl
import pytest

import nemo_run_k8s as run
from tests.config.standins import (
    AdamW,
    DataModule,
    Llama3Config8B,
    Llama3Config70B,
    LlamaModel,
    Trainer,
    TrainingJob,
)


def guide_base_config() -> run.Config:
    return run.Config(
        TrainingJob,
        model=run.Config(LlamaModel, config=run.Config(Llama3Config8B)),
        data=run.Config(DataModule, batch_size=32),
        optimizer=run.Config(AdamW, lr=0.001),
    )


def scale_batch_size(cfg):
    if hasattr(cfg, "batch_size"):
        cfg.batch_size = min(cfg.batch_size * 2, 1024)
    return cfg


# --------------------------------------------------------------------------- broadcast


def test_guide_broadcast_passage():
    config = guide_base_config()
    # Broadcast learning rate to all optimizers
    returned = config.broadcast(lr=0.0001)
    # Broadcast batch size to all data modules
    config.broadcast(batch_size=64)

    assert returned is config
    job = fdl.build(config)
    assert job.optimizer.lr == 0.0001
    assert job.data.batch_size == 64
    assert job.model == LlamaModel(Llama3Config8B())


def test_broadcast_sets_every_node_that_accepts_the_name_even_when_unset():
    config = guide_base_config()
    config.trainer = run.Config(Trainer, num_nodes=2)
    config.optimizer = [run.Config(AdamW), {"head": run.Config(AdamW, lr=0.5)}]

    config.broadcast(batch_size=128, lr=0.02)

    assert config.data.batch_size == 128
    assert config.trainer.batch_size == 128  # Trainer.batch_size was unset before
    assert config.optimizer[0].lr == 0.02
    assert config.optimizer[1]["head"].lr == 0.02
    assert config.trainer.num_nodes == 2


def test_broadcast_chains():
    job = fdl.build(guide_base_config().broadcast(lr=0.5).broadcast(num_workers=8))
    assert (job.optimizer.lr, job.data.num_workers) == (0.5, 8)


# --------------------------------------------------------------------------- walk


def test_guide_walk_passage():
    config = guide_base_config()
    config.broadcast(lr=0.0001)
    config.broadcast(batch_size=64)

    # Double all learning rates
    config.walk(lr=lambda cfg: cfg.lr * 2)
    # Set all sequence lengths to a specific value (Llama3Config8B's is only a default)
    config.walk(seq_length=lambda cfg: 8192)
    # Apply custom transformation
    config.walk(scale_batch_size)

    assert config.optimizer.lr == pytest.approx(0.0002)
    assert config.model.config.__arguments__ == {"seq_length": 8192}
    assert config.data.batch_size == 128
    job = fdl.build(config)
    assert job.optimizer == AdamW(lr=pytest.approx(0.0002))
    assert job.data == DataModule(batch_size=128)


def test_walk_keyword_uses_defaults_but_skips_nodes_without_the_parameter():
    config = guide_base_config()
    config.walk(num_workers=lambda cfg: cfg.num_workers + 1, weight_decay=lambda cfg: 0.1)
    assert config.data.num_workers == 3  # default 2, plus one
    assert config.optimizer.weight_decay == 0.1
    assert "num_workers" not in config.optimizer.__arguments__


def test_walk_batch_size_cap_of_the_guide_applies():
    config = guide_base_config()
    config.data.batch_size = 900
    config.walk(scale_batch_size)
    assert config.data.batch_size == 1024


def test_walk_fn_visits_children_before_parents():
    config = guide_base_config()
    order = []
    config.walk(lambda node: order.append(node.__fn_or_cls__.__name__))
    assert order == ["Llama3Config8B", "LlamaModel", "DataModule", "AdamW", "TrainingJob"]


def test_walk_fn_replaces_nodes_with_what_it_returns():
    config = guide_base_config()

    def upgrade(node):
        if node.__fn_or_cls__ is Llama3Config8B:
            return run.Config(Llama3Config70B, seq_length=node.seq_length)
        return None  # keep

    returned = config.walk(upgrade)
    assert returned is config
    assert fdl.build(config).model == LlamaModel(Llama3Config70B(seq_length=8192))


def test_walk_fn_can_replace_the_root_and_keeps_the_held_object():
    config = guide_base_config()
    held = config
    config.walk(
        lambda node: (
            run.Config(TrainingJob, model="swapped") if node.__fn_or_cls__ is TrainingJob else None
        )
    )
    assert held is config
    assert fdl.build(held) == TrainingJob(model="swapped")


def test_walk_fn_visits_a_shared_node_once_and_replaces_it_everywhere():
    shared = run.Config(DataModule, batch_size=16)
    config = run.Config(
        TrainingJob,
        model=run.Config(LlamaModel, config=run.Config(Llama3Config8B)),
        data=shared,
        trainer=run.Config(Trainer, batch_size=shared),
    )
    calls = []

    def double_data(node):
        calls.append(node.__fn_or_cls__.__name__)
        if node.__fn_or_cls__ is DataModule:
            return run.Config(DataModule, batch_size=node.batch_size * 2)
        return None

    config.walk(double_data)
    assert calls.count("DataModule") == 1
    assert config.data.batch_size == 32
    assert config.trainer.batch_size is config.data


def test_walk_takes_one_function_or_keywords_not_both():
    config = guide_base_config()
    with pytest.raises(run.ConfigError, match="either one function or keyword functions"):
        config.walk(scale_batch_size, lr=lambda c: 1.0)
    with pytest.raises(run.ConfigError, match="either one function or keyword functions"):
        config.walk()


def test_walk_rejects_a_non_config_for_the_root():
    with pytest.raises(run.ConfigError, match="returned int for the root config"):
        guide_base_config().walk(lambda node: 3 if node.__fn_or_cls__ is TrainingJob else None)


# --------------------------------------------------------------------------- copy


def test_copy_is_deep_and_independent():
    config = guide_base_config()
    clone = config.copy()
    clone.model.config.seq_length = 1
    clone.optimizer.lr = 9.0
    assert type(clone) is run.Config
    assert "seq_length" not in config.model.config.__arguments__
    assert config.optimizer.lr == 0.001
    assert fdl.build(clone).model.config.seq_length == 1


def test_copy_keeps_shared_nodes_shared_inside_the_copy():
    shared = run.Config(AdamW, lr=0.1)
    config = run.Config(TrainingJob, model="m", optimizer=shared, trainer=[shared])
    clone = config.copy()
    assert clone.optimizer is clone.trainer[0]
    assert clone.optimizer is not shared
    clone.optimizer.lr = 0.7
    assert clone.trainer[0].lr == 0.7
    assert shared.lr == 0.1
    job = fdl.build(clone)
    assert job.optimizer is job.trainer[0]  # fdl.build keeps the sharing, too


def test_partial_has_the_same_helpers():
    partial = run.Partial(TrainingJob, optimizer=run.Config(AdamW, lr=0.1))
    copied = partial.copy().broadcast(lr=0.3)
    assert type(copied) is run.Partial
    assert copied.optimizer.lr == 0.3
    assert partial.optimizer.lr == 0.1
    assert fdl.build(copied)(model="m").optimizer == AdamW(lr=0.3)
