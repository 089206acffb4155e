"""The guide's "Configuration Best Practices", passage by passage."""

from __future__ import annotations

import os

import fiddle as fdl
import pytest

import nemo_run_k8s as run
from tests.config.standins import (
    Llama3Config8B,
    Llama3Config70B,
    LlamaModel,
    Trainer,
    TrainingConfig,
    TrainingJob,
)
from tests.config.test_guide_python_config import create_model_config  # the guide's own helper

# --------------------------------------------------------------------------- type safety


def create_validated_config(config: TrainingConfig) -> run.Config:
    """Create NeMo Run configuration from validated config."""
    return run.Config(
        TrainingJob,
        model=create_model_config(config.model_size),
        trainer=run.Config(
            Trainer,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            max_epochs=config.max_epochs,
            precision="bf16-mixed" if config.use_mixed_precision else "32",
        ),
    )


def test_validated_dataclass_feeds_a_config():
    cfg = create_validated_config(
        TrainingConfig(model_size="70b", batch_size=256, learning_rate=1e-4, max_epochs=3)
    )
    job = fdl.build(cfg)
    assert job.trainer == Trainer(batch_size=256, learning_rate=1e-4, max_epochs=3)
    assert job.model == LlamaModel(Llama3Config70B(seq_length=16384, hidden_size=8192))

    fp32 = create_validated_config(TrainingConfig("8b", 8, 0.1, 1, use_mixed_precision=False))
    assert fdl.build(fp32).trainer.precision == "32"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("13b", 8, 0.1, 1), "Unsupported model size: 13b"),
        (("8b", 0, 0.1, 1), "Batch size must be positive"),
        (("8b", 8, 0.0, 1), "Learning rate must be positive"),
        (("8b", 8, 0.1, 0), "Max epochs must be positive"),
    ],
)
def test_training_config_rejects_bad_values_when_built(fields, message):
    names = ("model_size", "batch_size", "learning_rate", "max_epochs")
    config = run.Config(TrainingConfig, **dict(zip(names, fields, strict=True)))
    with pytest.raises(ValueError, match=message):  # the guide's own type, through fdl.build
        fdl.build(config)


# --------------------------------------------------------------------------- environments


def get_environment_config() -> run.Config:
    """Get configuration based on environment."""
    env = os.getenv("NEMO_ENV", "development")
    if env == "development":
        return run.Config(
            TrainingJob,
            model=create_model_config("8b"),
            trainer=run.Config(Trainer, num_nodes=1, gpus_per_node=1, batch_size=32, max_epochs=5),
        )
    elif env == "staging":
        return run.Config(
            TrainingJob,
            model=create_model_config("8b"),
            trainer=run.Config(
                Trainer, num_nodes=2, gpus_per_node=4, batch_size=256, max_epochs=50
            ),
        )
    elif env == "production":
        return run.Config(
            TrainingJob,
            model=create_model_config("70b"),
            trainer=run.Config(
                Trainer, num_nodes=8, gpus_per_node=8, batch_size=512, max_epochs=100
            ),
        )
    else:
        raise ValueError(f"Unknown environment: {env}")


@pytest.mark.parametrize(
    ("env", "nodes", "gpus", "batch", "model_cls"),
    [
        (None, 1, 1, 32, Llama3Config8B),
        ("development", 1, 1, 32, Llama3Config8B),
        ("staging", 2, 4, 256, Llama3Config8B),
        ("production", 8, 8, 512, Llama3Config70B),
    ],
)
def test_environment_specific_configs(monkeypatch, env, nodes, gpus, batch, model_cls):
    if env is None:
        monkeypatch.delenv("NEMO_ENV", raising=False)
    else:
        monkeypatch.setenv("NEMO_ENV", env)
    job = fdl.build(get_environment_config())
    trainer = job.trainer
    assert (trainer.num_nodes, trainer.gpus_per_node, trainer.batch_size) == (nodes, gpus, batch)
    assert type(job.model.config) is model_cls


# --------------------------------------------------------------------------- composition and reuse


BASE_MODEL_CONFIG = run.Config(
    LlamaModel, config=run.Config(Llama3Config8B, hidden_size=4096, num_attention_heads=32)
)

BASE_TRAINER_CONFIG = run.Config(
    Trainer, precision="bf16-mixed", max_epochs=100, gradient_clip_val=1.0
)


def create_experiment_config(model_size: str, seq_length: int, batch_size: int) -> run.Config:
    """Create experiment configuration by composing base configs."""
    model_config = BASE_MODEL_CONFIG.copy()
    trainer_config = BASE_TRAINER_CONFIG.copy()

    model_config.config.seq_length = seq_length
    if model_size == "70b":
        model_config.config = run.Config(Llama3Config70B)
        model_config.config.hidden_size = 8192
        model_config.config.num_attention_heads = 64

    trainer_config.batch_size = batch_size

    return run.Config(TrainingJob, model=model_config, trainer=trainer_config)


def test_composing_copies_of_base_configs():
    base_yaml = run.to_yaml(BASE_MODEL_CONFIG) + run.to_yaml(BASE_TRAINER_CONFIG)

    small = fdl.build(create_experiment_config("8b", seq_length=4096, batch_size=64))
    assert small.model == LlamaModel(
        Llama3Config8B(seq_length=4096, hidden_size=4096, num_attention_heads=32)
    )
    assert small.trainer == Trainer(
        precision="bf16-mixed", max_epochs=100, gradient_clip_val=1.0, batch_size=64
    )

    big = fdl.build(create_experiment_config("70b", seq_length=4096, batch_size=512))
    # As written in the guide, the 70b branch replaces the config after seq_length was set,
    # so the 70b model keeps Llama3Config70B's default sequence length.
    assert big.model == LlamaModel(Llama3Config70B(hidden_size=8192, num_attention_heads=64))
    assert big.trainer.batch_size == 512

    # The shared bases were copied, never changed.
    assert run.to_yaml(BASE_MODEL_CONFIG) + run.to_yaml(BASE_TRAINER_CONFIG) == base_yaml
    assert "seq_length" not in BASE_MODEL_CONFIG.config.__arguments__
    assert "batch_size" not in BASE_TRAINER_CONFIG.__arguments__
