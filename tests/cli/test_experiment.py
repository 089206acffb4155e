"""Experiments and sweeps on the local executor."""

from __future__ import annotations

import pytest

import nemo_run_k8s as run
from tests.cli.factories import experiment


def test_sweep_runs_every_grid_point_with_its_values():
    exp = run.sweep(experiment(), {"optimizer.lr": [0.1, 0.2], "trainer.max_epochs": [1, 2]})
    assert len(exp.names) == 4
    jobs = exp.launch()
    states = exp.wait(timeout=60)
    assert set(states.values()) == {run.JobState.SUCCEEDED}
    results = sorted(exp.results().values())
    assert results == [
        "epochs=1 lr=0.1 fast=False tag=base",
        "epochs=1 lr=0.2 fast=False tag=base",
        "epochs=2 lr=0.1 fast=False tag=base",
        "epochs=2 lr=0.2 fast=False tag=base",
    ]
    # every job is recorded under the experiment and can be found again
    again = run.Experiment.from_id(exp.id)
    assert sorted(j.id for j in again.jobs.values()) == sorted(j.id for j in jobs.values())
    table = exp.status()
    assert table.splitlines()[0].split() == ["NAME", "JOB", "ID", "EXECUTOR", "STATE"]
    assert table.count("SUCCEEDED") == 4


def test_sweep_leaves_the_base_config_alone():
    cfg = experiment()
    run.sweep(cfg, {"optimizer.lr": [0.5]})
    assert "lr" not in cfg.optimizer.__arguments__  # still the default, not 0.5


def test_sweep_path_errors_name_the_valid_paths():
    with pytest.raises(
        run.ConfigError, match=r"optimizer\.lrr.*Valid: optimizer\.lr, optimizer\.momentum"
    ):
        run.sweep(experiment(), {"optimizer.lrr": [1]})
    with pytest.raises(run.ConfigError, match="Config nodes under <root>: trainer, optimizer"):
        run.sweep(experiment(), {"optim.lr": [1]})
    with pytest.raises(run.ConfigError, match="non-empty list"):
        run.sweep(experiment(), {"optimizer.lr": []})


def test_experiment_rejects_duplicate_names_and_late_adds():
    exp = run.Experiment("exp")
    exp.add(experiment(), name="a")
    with pytest.raises(run.ConfigError, match="already has a task named 'a'"):
        exp.add(experiment(), name="a")
    exp.launch()
    with pytest.raises(run.ConfigError, match="already launched"):
        exp.add(experiment(), name="b")
    exp.wait(timeout=60)
    assert "epochs=1" in "\n".join(exp.logs("a"))
