"""Factories the CLI tests launch (importable as tests.cli.factories, or by file path)."""

from __future__ import annotations

import dataclasses
import time

import nemo_run_k8s as run


@dataclasses.dataclass
class Optimizer:
    lr: float = 0.1
    momentum: float = 0.9


@dataclasses.dataclass
class Trainer:
    max_epochs: int = 1
    fast: bool = False
    tag: str = "base"


def train(trainer: Trainer, optimizer: Optimizer) -> str:
    line = f"epochs={trainer.max_epochs} lr={optimizer.lr} fast={trainer.fast} tag={trainer.tag}"
    print(line)
    return line


def experiment() -> run.Partial:
    return run.Partial(train, trainer=run.Config(Trainer), optimizer=run.Config(Optimizer))


def sleeper(seconds: float = 60.0) -> None:
    print("sleeping", flush=True)
    time.sleep(seconds)


def slow() -> run.Partial:
    return run.Partial(sleeper, seconds=60.0)


def failing() -> run.Partial:
    return run.Partial(explode)


def explode() -> None:
    raise RuntimeError("the model diverged")


def not_a_task() -> int:
    return 3
