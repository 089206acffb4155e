"""Stand-ins for the classes and functions the configuration guide configures.

The guide configures NeMo's LlamaModel, trainers and data modules; these small
module-level dataclasses take their place so the guide's examples build real
objects here. They live at module level so YAML ``_target_`` names such as
``tests.config.standins.LlamaModel`` import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Precision(enum.Enum):
    BF16_MIXED = "bf16-mixed"
    FP32 = "32"


@dataclass
class Llama3Config8B:
    seq_length: int = 8192
    hidden_size: int = 4096
    num_attention_heads: int = 32
    attention_implementation: str = "flash_attention_2"


@dataclass
class Llama3Config70B:
    seq_length: int = 8192
    hidden_size: int = 8192
    num_attention_heads: int = 64
    attention_implementation: str = "flash_attention_2"


@dataclass
class LlamaModel:
    config: Llama3Config8B | Llama3Config70B


@dataclass
class Trainer:
    num_nodes: int = 1
    gpus_per_node: int = 8
    precision: str = "bf16-mixed"
    max_epochs: int = 1
    batch_size: int | None = None
    learning_rate: float | None = None
    gradient_clip_val: float = 0.0


@dataclass
class DataModule:
    batch_size: int = 32
    num_workers: int = 2


@dataclass
class AdamW:
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Any = None


@dataclass
class TrainingJob:
    model: LlamaModel
    trainer: Trainer | None = None
    data: DataModule | None = None
    optimizer: AdamW | None = None

    def __call__(self) -> dict:
        """What a job does with the built object: here, report what it would train."""
        return {
            "seq_length": self.model.config.seq_length,
            "batch_size": self.data.batch_size if self.data else None,
            "lr": self.optimizer.lr if self.optimizer else None,
        }


@dataclass
class PreprocessData:
    input_path: str
    output_path: str
    tokenizer: str


@dataclass
class TrainModel:
    model: LlamaModel
    data_path: str


@dataclass
class EvaluateModel:
    model_path: str
    test_data: str


@dataclass
class TrainingPipeline:
    preprocess: PreprocessData
    training: TrainModel
    evaluation: EvaluateModel


@dataclass
class Layout:
    """Carries the container and enum values the YAML tests round-trip."""

    shape: tuple[Any, ...] = ()
    names: list[Any] | None = None
    options: dict[str, Any] | None = None
    precision: Precision = Precision.BF16_MIXED
    note: str | None = None


def train_model(
    optimizer: str, learning_rate: float, batch_size: int = 32, data_path: str | None = None
) -> dict[str, Any]:
    """The guide's training function: returns what it was called with."""
    return {
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "data_path": data_path,
    }


def cosine_schedule(step: int, warmup: int = 100, peak: float = 1.0) -> float:
    return peak * min(1.0, step / warmup)


@dataclass
class TrainingConfig:
    """The guide's type-safe training configuration (Configuration Best Practices)."""

    model_size: str
    batch_size: int
    learning_rate: float
    max_epochs: int
    use_mixed_precision: bool = True

    def __post_init__(self) -> None:
        if self.model_size not in ["8b", "70b"]:
            raise ValueError(f"Unsupported model size: {self.model_size}")
        if self.batch_size <= 0:
            raise ValueError("Batch size must be positive")
        if self.learning_rate <= 0:
            raise ValueError("Learning rate must be positive")
        if self.max_epochs <= 0:
            raise ValueError("Max epochs must be positive")
