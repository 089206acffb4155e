"""The guide's "Python-Based Configuration" section, passage by passage.

Each test runs the guide's code (with stand-in classes for NeMo's) through
``import nemo_run_k8s as run`` and checks the objects it builds.
"""

from __future__ import annotations

import functools
import pickle

import fiddle as fdl
import pytest
from fiddle import printing
from fiddle.experimental import serialization

import nemo_run_k8s as run
from tests.config.standins import (
    AdamW,
    DataModule,
    EvaluateModel,
    Llama3Config8B,
    Llama3Config70B,
    LlamaModel,
    PreprocessData,
    Trainer,
    TrainingJob,
    TrainingPipeline,
    TrainModel,
    train_model,
)

# --------------------------------------------------------------------------- the guide's code


def create_model_config(
    model_size: str = "8b", seq_length: int = 16384, hidden_size: int = 4096
) -> run.Config:
    """Create a standardized model configuration."""
    if model_size == "8b":
        return run.Config(
            LlamaModel,
            config=run.Config(Llama3Config8B, seq_length=seq_length, hidden_size=hidden_size),
        )
    elif model_size == "70b":
        return run.Config(
            LlamaModel,
            config=run.Config(Llama3Config70B, seq_length=seq_length, hidden_size=8192),
        )
    else:
        raise ValueError(f"Unsupported model size: {model_size}")


def create_training_config(
    model_config: run.Config, num_nodes: int = 1, gpus_per_node: int = 8, batch_size: int = 512
) -> run.Config:
    """Create a complete training configuration."""
    return run.Config(
        TrainingJob,
        model=model_config,
        trainer=run.Config(
            Trainer,
            num_nodes=num_nodes,
            gpus_per_node=gpus_per_node,
            precision="bf16-mixed",
            max_epochs=100,
        ),
        data=run.Config(DataModule, batch_size=batch_size, num_workers=4),
        optimizer=run.Config(AdamW, lr=3e-4, weight_decay=0.01),
    )


def validate_training_config(config: run.Config) -> bool:
    """Validate training configuration parameters."""
    trainer = config.trainer
    data = config.data
    if trainer.num_nodes * trainer.gpus_per_node < 1:
        raise ValueError("At least one GPU is required")
    if data.batch_size % trainer.gpus_per_node != 0:
        raise ValueError("Batch size must be divisible by number of GPUs")
    estimated_memory = data.batch_size * config.model.config.seq_length * 4  # bytes
    if estimated_memory > 32 * 1024**3:  # 32GB
        print("Warning: High memory usage detected")
    return True


@run.autoconvert
def create_llama_model(seq_length: int = 16384) -> LlamaModel:
    """Create a Llama model with specified sequence length."""
    return LlamaModel(
        config=Llama3Config8B(seq_length=seq_length, hidden_size=4096, num_attention_heads=32)
    )


def create_adaptive_model_config(
    model_size: str, seq_length: int, use_flash_attention: bool = True
) -> run.Config:
    """Create model configuration with complex logic."""
    if model_size == "8b":
        base_config: type = Llama3Config8B
        hidden_size = 4096
    elif model_size == "70b":
        base_config = Llama3Config70B
        hidden_size = 8192
    else:
        raise ValueError(f"Unsupported model size: {model_size}")
    attention_heads = hidden_size // 128
    if use_flash_attention:  # noqa: SIM108 (the guide's code, as written)
        attention_implementation = "flash_attention_2"
    else:
        attention_implementation = "eager"
    return run.Config(
        LlamaModel,
        config=run.Config(
            base_config,
            seq_length=seq_length,
            hidden_size=hidden_size,
            num_attention_heads=attention_heads,
            attention_implementation=attention_implementation,
        ),
    )


# --------------------------------------------------------------------------- core primitives


def test_config_builds_the_model_it_describes():
    model_config = run.Config(
        LlamaModel,
        config=run.Config(
            Llama3Config8B, seq_length=16384, hidden_size=4096, num_attention_heads=32
        ),
    )
    model = fdl.build(model_config)
    assert model == LlamaModel(
        config=Llama3Config8B(seq_length=16384, hidden_size=4096, num_attention_heads=32)
    )
    assert isinstance(model_config, fdl.Config)
    assert isinstance(model_config.config, run.Config)


def test_partial_builds_a_function_waiting_for_the_rest():
    train_fn = run.Partial(train_model, optimizer="adam", learning_rate=0.001, batch_size=32)
    built = fdl.build(train_fn)
    assert isinstance(built, functools.partial)
    result = built(data_path="/path/to/data")
    assert result == {
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "data_path": "/path/to/data",
    }
    assert isinstance(train_fn, fdl.Partial)


# --------------------------------------------------------------------------- patterns


def test_basic_model_configuration_pattern():
    model_config = create_model_config(model_size="8b", seq_length=8192)
    assert fdl.build(model_config) == LlamaModel(Llama3Config8B(seq_length=8192, hidden_size=4096))
    big = fdl.build(create_model_config(model_size="70b", seq_length=4096))
    assert big == LlamaModel(Llama3Config70B(seq_length=4096, hidden_size=8192))
    with pytest.raises(ValueError, match="Unsupported model size: 13b"):
        create_model_config(model_size="13b")


def test_training_configuration_pattern():
    model_config = create_model_config(model_size="8b", seq_length=8192)
    training_config = create_training_config(
        model_config=model_config, num_nodes=4, gpus_per_node=8
    )
    job = fdl.build(training_config)
    assert job.trainer == Trainer(
        num_nodes=4, gpus_per_node=8, precision="bf16-mixed", max_epochs=100
    )
    assert job.data == DataModule(batch_size=512, num_workers=4)
    assert job.optimizer == AdamW(lr=3e-4, weight_decay=0.01)
    assert job.model.config.seq_length == 8192
    # Building twice gives fresh objects; the config itself is untouched.
    assert fdl.build(training_config) is not job
    assert training_config.model is model_config


def test_configuration_composition_builds_a_pipeline():
    model_config = create_model_config(model_size="8b", seq_length=8192)
    preprocess_config = run.Config(
        PreprocessData,
        input_path="/data/raw",
        output_path="/data/processed",
        tokenizer="llama-tokenizer",
    )
    training_config = run.Config(TrainModel, model=model_config, data_path="/data/processed")
    eval_config = run.Config(EvaluateModel, model_path="/checkpoints/best", test_data="/data/test")
    pipeline_config = run.Config(
        TrainingPipeline,
        preprocess=preprocess_config,
        training=training_config,
        evaluation=eval_config,
    )
    pipeline = fdl.build(pipeline_config)
    assert pipeline.preprocess == PreprocessData("/data/raw", "/data/processed", "llama-tokenizer")
    assert pipeline.training.data_path == pipeline.preprocess.output_path
    assert pipeline.training.model == LlamaModel(Llama3Config8B(seq_length=8192))
    assert pipeline.evaluation == EvaluateModel("/checkpoints/best", "/data/test")


def test_configuration_validation(capsys):
    model_config = create_model_config(model_size="8b", seq_length=8192)
    training_config = create_training_config(model_config, num_nodes=4, gpus_per_node=8)
    assert validate_training_config(training_config) is True
    assert capsys.readouterr().out == ""

    training_config.data.batch_size = 12
    with pytest.raises(ValueError, match="divisible by number of GPUs"):
        validate_training_config(training_config)

    training_config.data.batch_size = 2**20
    training_config.model.config.seq_length = 2**14
    assert validate_training_config(training_config) is True
    assert "Warning: High memory usage detected" in capsys.readouterr().out

    training_config.trainer.num_nodes = 0
    with pytest.raises(ValueError, match="At least one GPU is required"):
        validate_training_config(training_config)


# --------------------------------------------------------------------------- autoconvert


def test_autoconvert_returns_a_config_and_constructs_nothing():
    model_config = create_llama_model(seq_length=8192)
    assert isinstance(model_config, run.Config)
    assert isinstance(model_config.config, run.Config)
    assert model_config.__fn_or_cls__ is LlamaModel
    assert model_config.config.__arguments__ == {
        "seq_length": 8192,
        "hidden_size": 4096,
        "num_attention_heads": 32,
    }
    assert fdl.build(model_config) == LlamaModel(
        Llama3Config8B(seq_length=8192, hidden_size=4096, num_attention_heads=32)
    )
    # The result is an ordinary run.Config: the tree helpers work on it.
    model_config.broadcast(seq_length=4096)
    assert fdl.build(model_config).config.seq_length == 4096


@run.autoconvert(partial=True)
def llama_factory(seq_length: int = 2048) -> LlamaModel:
    return LlamaModel(config=Llama3Config8B(seq_length=seq_length))


@run.autoconvert
def job_with_lists() -> TrainingJob:
    return TrainingJob(
        model=LlamaModel(config=Llama3Config70B()),
        trainer=Trainer(num_nodes=2),
        data=DataModule(batch_size=sum([1, 2])),
        optimizer=AdamW(schedule=[AdamW(lr=0.1), {"inner": DataModule()}]),
    )


def test_autoconvert_partial_gives_a_partial():
    factory = llama_factory(seq_length=1024)
    assert isinstance(factory, run.Partial)
    assert isinstance(factory.config, run.Config)
    built = fdl.build(factory)
    assert isinstance(built, functools.partial)
    assert built() == LlamaModel(Llama3Config8B(seq_length=1024))


def test_autoconvert_makes_every_node_a_run_config():
    cfg = job_with_lists()
    nodes = []
    cfg.walk(nodes.append)
    targets = sorted(n.__fn_or_cls__.__name__ for n in nodes)
    top = ["TrainingJob", "LlamaModel", "Llama3Config70B", "Trainer", "DataModule", "AdamW"]
    in_schedule = ["AdamW", "DataModule"]
    assert targets == sorted([*top, *in_schedule])
    assert all(type(n) is run.Config for n in nodes)
    # Ordinary calls that are not configured objects still run: sum([1, 2]) == 3.
    assert cfg.data.batch_size == 3
    assert fdl.build(cfg).optimizer.schedule[1] == {"inner": DataModule()}


def test_workaround_for_complex_logic_is_a_plain_function():
    cfg = create_adaptive_model_config("70b", seq_length=4096, use_flash_attention=False)
    assert fdl.build(cfg) == LlamaModel(
        Llama3Config70B(
            seq_length=4096,
            hidden_size=8192,
            num_attention_heads=64,
            attention_implementation="eager",
        )
    )
    small = fdl.build(create_adaptive_model_config("8b", seq_length=2048))
    assert small.config.num_attention_heads == 32
    assert small.config.attention_implementation == "flash_attention_2"
    with pytest.raises(ValueError, match="Unsupported model size: 3b"):
        create_adaptive_model_config("3b", seq_length=2048)


# --------------------------------------------------------------------------- fiddle interop


def test_fiddle_printing_and_serialization_accept_run_configs():
    cfg = create_training_config(create_model_config("8b", seq_length=8192), num_nodes=2)
    flat = printing.as_str_flattened(cfg)
    assert "trainer.num_nodes: int = 2" in flat
    assert "model.config.seq_length: int = 8192" in flat

    restored = serialization.load_json(serialization.dump_json(cfg))
    assert type(restored) is run.Config
    assert type(restored.trainer) is run.Config
    assert fdl.build(restored) == fdl.build(cfg)

    unpickled = pickle.loads(pickle.dumps(cfg))
    assert type(unpickled) is run.Config
    assert fdl.build(unpickled) == fdl.build(cfg)


def test_validated_config_is_submitted_as_the_guide_does():
    model_config = create_model_config(model_size="8b", seq_length=8192)
    training_config = create_training_config(model_config, num_nodes=1, gpus_per_node=1)
    executor = run.LocalExecutor()
    if validate_training_config(training_config):
        experiment = run.submit(training_config, executor)
    assert experiment.wait(timeout=60) is run.JobState.SUCCEEDED
    # a Config task is built in the job and the built TrainingJob is called
    assert experiment.result() == {"seq_length": 8192, "batch_size": 512, "lr": 3e-4}
