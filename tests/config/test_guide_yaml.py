"""The guide's "YAML Equivalence", plus round trips through from_yaml and Hydra."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import fiddle as fdl
import pytest
import yaml
from hydra.utils import instantiate

import nemo_run_k8s as run
from tests.config.standins import (
    AdamW,
    DataModule,
    Layout,
    Llama3Config8B,
    LlamaModel,
    Precision,
    Trainer,
    TrainingJob,
    cosine_schedule,
    train_model,
)

M = "tests.config.standins"


def guide_yaml(text: str) -> object:
    """Parses a YAML block from the guide, with our stand-in module for NeMo's."""
    text = text.replace("nemo.collections.llm.gpt.model.llama.", f"{M}.")
    text = text.replace("_target_: train_model", f"_target_: {M}.train_model")
    return yaml.safe_load(textwrap.dedent(text))


def guide_config() -> run.Config:
    return run.Config(
        LlamaModel, config=run.Config(Llama3Config8B, seq_length=16384, hidden_size=4096)
    )


def job_config() -> run.Config:
    return run.Config(
        TrainingJob,
        model=guide_config(),
        trainer=run.Config(Trainer, num_nodes=2, precision="bf16-mixed"),
        data=run.Config(DataModule, batch_size=64),
        optimizer=run.Config(AdamW, lr=3e-4, schedule=run.Partial(cosine_schedule, warmup=10)),
    )


def layout_config() -> run.Config:
    return run.Config(
        Layout,
        shape=(2, (3, 4), [5]),
        names=["a", (1.5, None), {"k": Precision.FP32}],
        options={"flag": True, "nested": {"depth": 2}, "model": guide_config()},
        precision=Precision.FP32,
        note=None,
    )


def assert_same_objects(ours, theirs):
    """Equal built trees; functools.partial values (no __eq__) are compared by calling them."""
    if isinstance(getattr(ours, "optimizer", None), AdamW) and ours.optimizer.schedule:
        assert ours.optimizer.schedule(5) == theirs.optimizer.schedule(5) == 0.5
        ours.optimizer.schedule = theirs.optimizer.schedule = None
    assert ours == theirs


# --------------------------------------------------------------------------- the guide's passages


def test_basic_configuration_mapping():
    text = run.to_yaml(guide_config())
    assert text == (
        f"_target_: {M}.LlamaModel\n"
        "config:\n"
        f"  _target_: {M}.Llama3Config8B\n"
        "  seq_length: 16384\n"
        "  hidden_size: 4096\n"
    )
    assert yaml.safe_load(text) == guide_yaml(
        """
        _target_: nemo.collections.llm.gpt.model.llama.LlamaModel
        config:
            _target_: nemo.collections.llm.gpt.model.llama.Llama3Config8B
            seq_length: 16384
            hidden_size: 4096
        """
    )
    assert guide_config().to_yaml() == text


def test_partial_function_mapping():
    partial = run.Partial(train_model, optimizer="adam", learning_rate=0.001)
    text = run.to_yaml(partial)
    assert text == (
        f"_target_: {M}.train_model\n_partial_: true\noptimizer: adam\nlearning_rate: 0.001\n"
    )
    assert yaml.safe_load(text) == guide_yaml(
        """
        _target_: train_model
        _partial_: true
        optimizer: adam
        learning_rate: 0.001
        """
    )
    parsed = run.from_yaml(text)
    assert type(parsed) is run.Partial
    assert fdl.build(parsed)(batch_size=8) == train_model("adam", 0.001, batch_size=8)


def test_configuration_operations():
    config = guide_config()
    # Modify configuration
    config.config.seq_length *= 2
    config.config.hidden_size = 8192

    assert yaml.safe_load(config.to_yaml()) == guide_yaml(
        """
        _target_: nemo.collections.llm.gpt.model.llama.LlamaModel
        config:
            _target_: nemo.collections.llm.gpt.model.llama.Llama3Config8B
            seq_length: 32768  # Doubled
            hidden_size: 8192  # Changed
        """
    )

    # Broadcast values: deliberate divergence from the guide, whose LlamaModel tree has no
    # learning_rate parameter; a name no node accepts is an error, so typos cannot pass silently.
    with pytest.raises(run.ConfigError) as err:
        config.broadcast(learning_rate=0.0001)
    message = str(err.value)
    assert "no config node in this tree accepts learning_rate" in message
    for accepted in ("attention_implementation", "config", "hidden_size", "seq_length"):
        assert accepted in message
    assert config.config.seq_length == 32768  # nothing was changed


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("make", [guide_config, job_config, layout_config])
def test_from_yaml_of_to_yaml_builds_equal_objects(make):
    cfg = make()
    parsed = run.from_yaml(run.to_yaml(cfg))
    assert type(parsed) is run.Config
    assert_same_objects(fdl.build(parsed), fdl.build(cfg))
    assert run.to_yaml(parsed) == run.to_yaml(cfg)


@pytest.mark.parametrize("make", [guide_config, job_config, layout_config])
def test_hydra_instantiate_builds_what_fdl_build_builds(make):
    cfg = make()
    from_hydra = instantiate(yaml.safe_load(run.to_yaml(cfg)))
    assert_same_objects(from_hydra, fdl.build(cfg))
    if make is layout_config:
        assert type(from_hydra.names) is list
        assert type(from_hydra.options["nested"]) is dict
        assert from_hydra.shape == (2, (3, 4), [5])


def test_hydra_instantiate_of_a_partial_matches_calling_the_built_partial():
    partial = run.Partial(train_model, optimizer="adam", learning_rate=0.001)
    from_hydra = instantiate(yaml.safe_load(run.to_yaml(partial)))
    built = fdl.build(partial)
    assert isinstance(from_hydra, functools.partial)
    assert from_hydra(data_path="/d") == built(data_path="/d")


def test_enums_and_tuples_round_trip_with_their_real_types():
    parsed = run.from_yaml(run.to_yaml(layout_config()))
    layout = fdl.build(parsed)
    assert layout.precision is Precision.FP32
    assert type(layout.shape) is tuple
    assert type(layout.shape[1]) is tuple
    assert type(layout.shape[2]) is list
    assert type(layout.names[1]) is tuple
    assert layout.names[2]["k"] is Precision.FP32
    assert layout.options["model"] == LlamaModel(Llama3Config8B(seq_length=16384))


def test_yaml_text_of_containers_and_enums():
    data = yaml.safe_load(run.to_yaml(layout_config()))
    assert data["_convert_"] == "all"  # so Hydra passes plain lists/dicts, not OmegaConf ones
    assert data["precision"] == {"_target_": f"{M}.Precision", "_args_": ["32"]}
    assert data["shape"]["_target_"] == "builtins.tuple"
    assert data["note"] is None
    assert data["options"]["flag"] is True
    assert data["options"]["model"]["_target_"] == f"{M}.LlamaModel"


def test_strings_that_look_like_other_types_stay_strings():
    cfg = run.Config(Trainer, precision="32", num_nodes=4)
    text = run.to_yaml(cfg)
    assert "precision: '32'" in text
    assert fdl.build(run.from_yaml(text)).precision == "32"


def test_from_yaml_reads_a_file_path(tmp_path: Path):
    path = tmp_path / "job.yaml"
    path.write_text(run.to_yaml(job_config()))
    for source in (path, str(path)):
        parsed = run.from_yaml(source)
        assert fdl.build(parsed).trainer == Trainer(num_nodes=2)


def test_from_yaml_of_a_missing_file_says_so(tmp_path: Path):
    with pytest.raises(run.ConfigError, match=r"no such YAML file: .*missing\.yaml"):
        run.from_yaml(str(tmp_path / "missing.yaml"))


def test_every_parse_is_independent():
    text = run.to_yaml(job_config())
    first, second = run.from_yaml(text), run.from_yaml(text)
    first.trainer.num_nodes = 99
    first.model.config.seq_length = 1
    assert second.trainer.num_nodes == 2
    assert second.model.config.seq_length == 16384
    assert first.model is not second.model
