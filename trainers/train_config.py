"""Plain-data configs and results that cross the trainers' boundary."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainers.stacked_mlp import MLPConfig
from trainers.stacked_optim import OptimizerConfig
from trainers.vocabulary import SCHEDULES

PRECISIONS = ("fp32", "bf16")
CAPTURE_MODES = ("off", "compile")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one trial trains with; plain data, no Optuna or MLflow types."""

    batch_size: int | None  # None trains full-batch; larger than a fold also means full-batch
    epochs: int
    optimizer: OptimizerConfig
    model: MLPConfig = MLPConfig()
    schedule: str = "none"  # one of SCHEDULES, applied per epoch
    step_size: int = 10  # "step": epochs between LR drops
    gamma: float = 0.1  # "step": LR multiplier at each drop
    seed: int = 0  # initial weights, per-epoch permutations and dropout
    precision: str = "fp32"  # or "bf16": matmuls in bfloat16, weights and optimizer in float32
    capture: str = "off"  # or "compile": the step through torch.compile (CUDA graphs on CUDA)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {PRECISIONS}.")
        if self.capture not in CAPTURE_MODES:
            raise ValueError(f"capture={self.capture!r} is not one of {CAPTURE_MODES}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (full), but got {self.batch_size}.")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, but got epochs={self.epochs}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {SCHEDULES}.")

    def lr_scale(self, epoch: int) -> float:
        """Multiplier on the base LR during 0-based ``epoch``."""
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        if self.schedule == "step":
            return self.gamma ** (epoch // self.step_size)
        return 1.0


@dataclass(frozen=True)
class EpochReport:
    """What ``on_epoch`` receives after each epoch; arrays hold one value per fold."""

    epoch: int  # 1-based
    train_loss: np.ndarray  # mean of the epoch's batch losses
    val_loss: np.ndarray
    val_metric: np.ndarray  # R² (regression) or accuracy (classification)
    epoch_seconds: float  # the whole stack's epoch
    lr: float
    stack_size: int = 1  # trials that trained in the stack during this epoch


@dataclass(frozen=True)
class CVResult:
    """All folds' curves for one trial; arrays are ``(epochs, n_folds)``."""

    metric_name: str  # "r2" or "accuracy"
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_metric: np.ndarray
    epoch_seconds: np.ndarray  # (epochs,)
    batch_size: int  # the batch size actually used (full-batch resolved to the largest fold)
    updates_per_epoch: int
    chunks_per_step: int = 1  # > 1 when a batch did not fit the device and was accumulated
    stack_size: int = 1  # trials trained together with this one (epoch_seconds is the stack's)
    n_train_samples: int = 0  # training samples per epoch, summed over the folds
    peak_memory_bytes: int = 0  # the stack's peak device memory (see memory_kind)
    memory_kind: str = "estimate"  # "cuda peak allocated", or "estimate" (tensor sizes) elsewhere
    final_params: Any = None  # torch.Tensor (n_folds, n_params): each fold model's last weights
    # torch.Tensor (n_params,): fold 0's weights after the first epoch, for the gradient noise
    # scale measured early in training too (None when the first epoch is the last)
    early_params: Any = None

    @property
    def fold_val_loss(self) -> np.ndarray:
        return self.val_loss[-1]

    @property
    def fold_val_metric(self) -> np.ndarray:
        return self.val_metric[-1]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; ``epoch`` is the 1-based epoch where it was seen."""

    def __init__(self, epoch: int, which: str) -> None:
        super().__init__(f"{which} became NaN or infinite at epoch {epoch}")
        self.epoch = epoch
        self.which = which
