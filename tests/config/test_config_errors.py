"""Bad input to the configuration layer: each mistake gets a message that says what to do."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

import nemo_run_k8s as run
from tests.config.standins import AdamW, DataModule, Llama3Config8B, LlamaModel, TrainingJob

# --------------------------------------------------------------------------- broadcast


def test_broadcast_of_a_name_no_node_accepts_lists_what_the_tree_accepts():
    config = run.Config(
        TrainingJob,
        model=run.Config(LlamaModel, config=run.Config(Llama3Config8B)),
        optimizer=run.Config(AdamW, lr=0.1),
    )
    with pytest.raises(run.ConfigError) as err:
        config.broadcast(lr=0.5, learning_rat=0.1)
    message = str(err.value)
    assert "no config node in this tree accepts learning_rat" in message
    assert "Parameters the tree accepts: " in message
    accepted = message.split("Parameters the tree accepts: ")[1].split(", ")
    assert accepted == sorted(accepted)
    assert {"lr", "weight_decay", "seq_length", "model", "optimizer"} <= set(accepted)
    assert config.optimizer.lr == 0.1  # nothing is set when any name is unknown


def test_config_error_is_a_value_error():
    assert issubclass(run.ConfigError, ValueError)
    assert issubclass(run.ConfigError, run.NemoRunError)


# --------------------------------------------------------------------------- autoconvert


def test_autoconvert_names_an_if_statement():
    with pytest.raises(run.ConfigError) as err:

        @run.autoconvert
        def pick(size: str):
            if size == "8b":
                return LlamaModel(config=Llama3Config8B())
            return LlamaModel(config=Llama3Config8B(hidden_size=8192))

    message = str(err.value)
    assert "cannot convert" in message and "pick" in message
    assert "an if/else statement is not supported" in message
    assert 'if size == "8b":' in message
    assert "test_config_errors.py" in message
    assert "Workaround: write a plain function" in message and "run.Config(" in message


def test_autoconvert_names_a_for_loop():
    with pytest.raises(run.ConfigError, match="a for loop is not supported") as err:

        @run.autoconvert
        def stack():
            layers = []
            for i in range(3):
                layers.append(DataModule(batch_size=i))
            return TrainingJob(model=layers)

    assert "for i in range(3):" in str(err.value)
    assert "Workaround" in str(err.value)


def test_autoconvert_names_a_list_comprehension():
    with pytest.raises(run.ConfigError, match="a list comprehension is not supported") as err:

        @run.autoconvert
        def stack():
            return TrainingJob(model=[DataModule(batch_size=i) for i in range(3)])

    assert "Workaround" in str(err.value)


def test_autoconvert_of_a_function_returning_no_call():
    @run.autoconvert
    def just_a_number():
        return 3

    with pytest.raises(run.ConfigError, match="returned int, not a call to configure"):
        just_a_number()


def test_autoconvert_without_source_says_where_to_define_the_function():
    namespace: dict = {}
    exec("def made_at_a_prompt():\n    return 1\n", namespace)
    with pytest.raises(run.ConfigError, match=r"cannot read the source.*in a \.py file"):
        run.autoconvert(namespace["made_at_a_prompt"])


# --------------------------------------------------------------------------- YAML


def test_a_lambda_in_yaml_names_its_config_path():
    config = run.Config(
        TrainingJob,
        model="m",
        optimizer=run.Config(AdamW, schedule=lambda step: 0.1 * step),
    )
    with pytest.raises(run.ConfigError) as err:
        run.to_yaml(config)
    message = str(err.value)
    assert message.startswith("<root>.optimizer.schedule: a lambda cannot be written as YAML")
    assert "run.Partial(module_level_function" in message


def test_an_arbitrary_object_in_yaml_names_its_path_and_type():
    config = run.Config(TrainingJob, model="m", data=[run.Config(DataModule, batch_size=1), 2])
    config.data.append(threading.Lock())
    with pytest.raises(run.ConfigError) as err:
        config.to_yaml()
    message = str(err.value)
    assert message.startswith("<root>.data[2]: a lock (<unlocked _thread.lock")
    assert "make this value a run.Config of the call that creates it" in message


def test_a_target_defined_inside_a_function_cannot_be_a_yaml_target():
    @dataclass
    class LocalModel:
        size: int = 1

    config = run.Config(TrainingJob, model=run.Config(LocalModel))
    with pytest.raises(run.ConfigError) as err:
        run.to_yaml(config)
    message = str(err.value)
    assert message.startswith("<root>.model: a definition inside a function")
    assert "LocalModel" in message
    assert "define it at module level" in message


def test_from_yaml_of_an_unknown_target_names_the_path():
    text = (
        "_target_: tests.config.standins.TrainingJob\nmodel:\n  _target_: tests.config.nope.Model\n"
    )
    with pytest.raises(run.ConfigError) as err:
        run.from_yaml(text)
    message = str(err.value)
    assert message.startswith("<root>.model._target_: cannot import 'tests.config.nope.Model'")
    assert "PYTHONPATH" in message


def test_from_yaml_of_an_unknown_parameter_names_the_path():
    text = "_target_: tests.config.standins.AdamW\nlearning_rate: 0.1\n"
    with pytest.raises(run.ConfigError, match=r"<root>: cannot configure .*AdamW.*learning_rate"):
        run.from_yaml(text)


def test_from_yaml_of_invalid_yaml():
    with pytest.raises(run.ConfigError, match="invalid YAML"):
        run.from_yaml("_target_: [unclosed\n")


def test_from_yaml_of_a_non_boolean_partial_flag():
    text = "_target_: tests.config.standins.train_model\n_partial_: 'yes'\n"
    with pytest.raises(run.ConfigError, match=r"<root>._partial_ must be true or false"):
        run.from_yaml(text)


def test_from_yaml_of_a_missing_path_object_says_so(tmp_path: Path):
    with pytest.raises(run.ConfigError, match=r"no such YAML file: .*absent\.yaml"):
        run.from_yaml(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- Script


def test_script_with_both_path_and_inline():
    with pytest.raises(run.ConfigError) as err:
        run.Script("train.sh", inline="echo hi")
    assert "exactly one of path or inline" in str(err.value)
    assert "run.Script('train.sh')" in str(err.value)


def test_script_with_neither_path_nor_inline():
    with pytest.raises(run.ConfigError, match="exactly one of path or inline"):
        run.Script()


@pytest.mark.parametrize(
    ("value", "shown"),
    [(4, "got int 4; write it as a string, e.g. CUDA_VISIBLE_DEVICES='4'"), (True, "got bool")],
)
def test_script_env_values_must_be_strings(value, shown):
    with pytest.raises(run.ConfigError) as err:
        run.Script("train.sh", env_vars={"CUDA_VISIBLE_DEVICES": value})
    message = str(err.value)
    assert "env_vars['CUDA_VISIBLE_DEVICES'] must be a string" in message
    assert shown in message


def test_script_env_names_must_be_valid():
    with pytest.raises(run.ConfigError, match="'MY-VAR' is not a valid environment variable name"):
        run.Script("train.sh", env_vars={"MY-VAR": "1"})


def test_script_args_must_be_a_list_of_strings():
    with pytest.raises(run.ConfigError) as err:
        run.Script("train.sh", args="--model-size 8b")
    assert "args must be a list of argv entries, not one string" in str(err.value)
    assert "['--model-size', '8b']" in str(err.value)

    with pytest.raises(run.ConfigError, match=r"args\[1\] must be a string, got int 512"):
        run.Script("train.sh", args=["--batch-size", 512])


def test_autoconvert_names_a_nested_function():
    with pytest.raises(run.ConfigError, match="Nested function definitions are not supported"):

        @run.autoconvert
        def with_helper():
            def helper():
                return DataModule()

            return TrainingJob(model=helper())
