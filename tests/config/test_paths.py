"""Dotted config paths: ``check_path``/``set_path``, owned by the config room."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.config.paths import check_path, node_at, set_path
from tests.config.standins import AdamW, Llama3Config8B, LlamaModel, TrainingJob
from tests.conftest import child_env


def job() -> run.Config:
    return run.Config(
        TrainingJob,
        model=run.Config(LlamaModel, config=run.Config(Llama3Config8B)),
        optimizer=run.Config(AdamW, lr=0.1),
    )


def test_set_path_sets_a_nested_parameter():
    cfg = job()
    check_path(cfg, "model.config.seq_length")
    set_path(cfg, "model.config.seq_length", 4096)
    assert cfg.model.config.seq_length == 4096
    assert node_at(cfg, "optimizer.lr") is cfg.optimizer


def test_an_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(run.ConfigError) as err:
        check_path(job(), "optimizer.learning_rate")
    assert str(err.value) == (
        "optimizer.learning_rate: AdamW has no parameter 'learning_rate'. "
        "Valid: optimizer.lr, optimizer.weight_decay, optimizer.schedule"
    )


def test_a_path_through_a_value_that_is_not_a_config_says_which_are():
    with pytest.raises(run.ConfigError) as err:
        check_path(job(), "optimizer.lr.x")
    assert str(err.value) == (
        "optimizer.lr.x: optimizer.lr is not a config node. Config nodes under optimizer: (none)"
    )


def test_the_override_parser_does_not_load_the_submit_stack():
    code = (
        "import sys, nemo_run_k8s.config.overrides\n"
        "stack = ('nemo_run_k8s.experiment', 'nemo_run_k8s.api')\n"
        "print([m for m in stack if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
