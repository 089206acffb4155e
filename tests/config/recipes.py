"""Module-level recipes in NeMo-Run's style, for the tests of test_nemo_run_recipes.py.

``@run.autoconvert`` reads a function's source, and YAML targets must import,
so these live in a module of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import nemo_run_k8s as run


@dataclass
class Model:
    hidden: int = 256
    layers: int = 2


@dataclass
class Trainer:
    model: Model
    max_steps: int = 10


@run.autoconvert
def my_model() -> Model:
    return Model(hidden=1000)


@run.autoconvert
def my_trainer() -> Trainer:
    return Trainer(model=my_model(), max_steps=50)


@run.autoconvert
def model_as_config() -> Model:
    return run.Config(Model, hidden=500)


def scaled(base, /, factor, *extra):
    """A function with a positional-only parameter and *args."""
    return base * factor + sum(extra)


@run.autoconvert(partial=True)
def scaled_recipe():
    return scaled(2, 3, 4, 5)


@run.autoconvert(partial=True)
def trainer_recipe() -> Trainer:
    return Trainer(model=my_model())


@dataclass
class Data:
    path: str
    batch_size: int


@dataclass
class NestedData:
    data: Data
    shuffle: bool = True


def load(data: NestedData, value: int = 0) -> tuple[str, int, int]:
    return data.data.path, data.data.batch_size, value


@dataclass
class Counter:
    start: int
    seen: list[int] = field(init=False, default_factory=list)


@dataclass
class Optimizer:
    lr: float = 0.01


@dataclass
class Job:
    model: Model
    optimizer: Annotated[Optimizer | None, run.Config[Optimizer]] = None
    scheduler: Optimizer | None = None
