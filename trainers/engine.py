"""The fold-stacked training engine: all k folds of a trial train together as one stacked model.

The data moves to the device once (:func:`prepare_folds`), pre-standardised per fold with each
fold's own train-only statistics. Every epoch each fold draws its own permutation from a seeded
generator, batches are gathered by index, and the k models step together. Folds of unequal size are
exact: positions past a fold's end are masked out of its loss, and a fold whose data ran out sits the
step out (its parameters and optimizer state stay untouched). Losses accumulate on the device and are
read once per epoch, when ``on_epoch`` is called.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trainers.data import Dataset
from trainers.folds import Fold, fit_fold_scaling
from trainers.stacked_mlp import MLPConfig, StackedMLP
from trainers.stacked_optim import OptimizerConfig, StackedOptimizer

SCHEDULES = ("none", "cosine", "step")


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

    def __post_init__(self) -> None:
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
    epoch_seconds: float
    lr: float


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


@dataclass(frozen=True)
class FoldData:
    """A data set and its folds on the device, standardised per fold (train-only statistics)."""

    task: str
    n_classes: int | None
    n_features: int
    device: torch.device
    inputs: Tensor  # (n_folds * n_rows, n_features): fold k's standardised copy at rows k*n_rows...
    targets: Tensor  # (n_folds * n_rows,) float (regression, standardised) or int64 classes
    train_rows: Tensor  # (n_folds, max_train) rows into inputs, padded with the fold's first row
    train_sizes: tuple[int, ...]
    val_inputs: Tensor  # (n_folds, max_val, n_features)
    val_targets: Tensor  # (n_folds, max_val)
    val_mask: Tensor  # (n_folds, max_val) float: 1 for real rows, 0 for padding
    val_sizes: tuple[int, ...]

    @property
    def n_folds(self) -> int:
        return len(self.train_sizes)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" else 1


def prepare_folds(dataset: Dataset, folds: Sequence[Fold], *, device: torch.device) -> FoldData:
    """Standardise per fold and move everything to ``device``, once per study.

    Example:
        >>> data = prepare_folds(dataset, make_folds(dataset, n_folds=5), device=torch.device("cpu"))
    """
    scaling = fit_fold_scaling(dataset, folds)
    n_rows = dataset.X.shape[0]
    classification = dataset.task == "classification"
    inputs = (dataset.X[None] - scaling.x_mean[:, None, :]) / scaling.x_std[:, None, :]
    if classification:
        targets = np.tile(dataset.y.astype(np.int64), len(folds))
    else:
        targets = ((dataset.y[None] - scaling.y_mean[:, None]) / scaling.y_std[:, None]).reshape(-1)
    inputs = inputs.reshape(-1, dataset.X.shape[1]).astype(np.float32)
    train_sizes = tuple(len(fold.train_idx) for fold in folds)
    val_sizes = tuple(len(fold.val_idx) for fold in folds)
    train_rows = np.zeros((len(folds), max(train_sizes)), dtype=np.int64)
    val_rows = np.zeros((len(folds), max(val_sizes)), dtype=np.int64)
    val_mask = np.zeros(val_rows.shape, dtype=np.float32)
    for k, fold in enumerate(folds):
        offset = k * n_rows
        train_rows[k] = offset + fold.train_idx[0]
        train_rows[k, : len(fold.train_idx)] = offset + fold.train_idx
        val_rows[k] = offset + fold.val_idx[0]
        val_rows[k, : len(fold.val_idx)] = offset + fold.val_idx
        val_mask[k, : len(fold.val_idx)] = 1
    inputs_t = torch.from_numpy(inputs).to(device)
    targets_t = torch.from_numpy(np.ascontiguousarray(targets)).to(device)
    if not classification:
        targets_t = targets_t.float()
    val_rows_t = torch.from_numpy(val_rows).to(device)
    return FoldData(
        task=dataset.task,
        n_classes=dataset.n_classes,
        n_features=dataset.X.shape[1],
        device=device,
        inputs=inputs_t,
        targets=targets_t,
        train_rows=torch.from_numpy(train_rows).to(device),
        train_sizes=train_sizes,
        val_inputs=inputs_t[val_rows_t],
        val_targets=targets_t[val_rows_t],
        val_mask=torch.from_numpy(val_mask).to(device),
        val_sizes=val_sizes,
    )


def epoch_orders(
    generator: torch.Generator, sizes: Sequence[int], *, device: torch.device
) -> Tensor:
    """One random permutation per fold, ``(n_folds, max(sizes))``.

    Row k starts with a permutation of ``range(sizes[k])``; the positions after it hold the
    padding indices ``sizes[k]..`` and are masked out by the engine.
    """
    n_max = max(sizes)
    keys = torch.rand(len(sizes), n_max, generator=generator, device=device)
    positions = torch.arange(n_max, device=device)
    sizes_t = torch.tensor(sizes, device=device).unsqueeze(1)
    keys = torch.where(positions < sizes_t, keys, 2.0 + positions.to(keys.dtype))
    return keys.argsort(dim=1)


def train_folds(
    data: FoldData,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> CVResult:
    """Train one model per fold, all stacked, and return every fold's per-epoch curves.

    ``on_epoch`` is called after each epoch with host-side numbers; raising from it (for example
    to prune) stops training. A NaN or infinite loss raises :class:`TrainingDiverged`.

    Example:
        >>> config = TrainConfig(batch_size=64, epochs=10, optimizer=OptimizerConfig("adam", 1e-3))
        >>> result = train_folds(data, config)
        >>> result.fold_val_loss.mean()
    """
    device = data.device
    sizes = data.train_sizes
    n_folds, n_max = data.n_folds, max(sizes)
    batch_size = n_max if config.batch_size is None else min(config.batch_size, n_max)
    n_steps = math.ceil(n_max / batch_size)
    # Which folds still have samples at each step, and 1 / batch count, are known from the sizes.
    fold_steps = torch.tensor([math.ceil(size / batch_size) for size in sizes], device=device)
    positions = torch.arange(n_max, device=device)
    valid = (positions < torch.tensor(sizes, device=device).unsqueeze(1)).float()
    # From this step on, some fold may have run out of samples and must sit the step out.
    first_ragged_step = min(math.ceil(size / batch_size) for size in sizes)

    model = StackedMLP(data.n_features, data.n_outputs, config.model)
    flat = model.init_flat(n_folds, seed=config.seed, device=device).requires_grad_(True)
    optimizer = StackedOptimizer(flat, [config.optimizer] * n_folds)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    dropout_generator = generator if config.model.dropout > 0 else None
    loss_fn = _loss_fn(data.task)

    curves: dict[str, list[np.ndarray]] = {"train": [], "val": [], "metric": []}
    epoch_seconds: list[float] = []
    for epoch in range(config.epochs):
        started = time.perf_counter()
        lr_scale = config.lr_scale(epoch)
        order = epoch_orders(generator, sizes, device=device)
        rows = data.train_rows.gather(1, order)
        train_loss_sum = torch.zeros(n_folds, device=device)
        for step in range(n_steps):
            window = slice(step * batch_size, (step + 1) * batch_size)
            batch_rows = rows[:, window]
            mask = valid[:, window]
            counts = mask.sum(dim=1)
            outputs = model.forward(
                flat, data.inputs[batch_rows], dropout_generator=dropout_generator
            )
            per_sample = loss_fn(outputs, data.targets[batch_rows])
            fold_loss = (per_sample * mask).sum(dim=1) / counts.clamp_min(1)
            (grad,) = torch.autograd.grad(fold_loss.sum(), flat)
            active = (counts > 0).unsqueeze(1) if step >= first_ragged_step else None
            optimizer.step(grad, lr_scale=lr_scale, active=active)
            train_loss_sum += fold_loss.detach()
        val_loss, val_metric = _evaluate(model, flat.detach(), data)
        # The one host sync of the epoch.
        train_loss = (train_loss_sum / fold_steps).cpu().numpy()
        val_loss_np, val_metric_np = val_loss.cpu().numpy(), val_metric.cpu().numpy()
        epoch_seconds.append(time.perf_counter() - started)
        if not np.all(np.isfinite(train_loss)):
            raise TrainingDiverged(epoch + 1, "train loss")
        if not np.all(np.isfinite(val_loss_np)):
            raise TrainingDiverged(epoch + 1, "validation loss")
        curves["train"].append(train_loss)
        curves["val"].append(val_loss_np)
        curves["metric"].append(val_metric_np)
        if on_epoch is not None:
            on_epoch(
                EpochReport(
                    epoch=epoch + 1,
                    train_loss=train_loss,
                    val_loss=val_loss_np,
                    val_metric=val_metric_np,
                    epoch_seconds=epoch_seconds[-1],
                    lr=config.optimizer.lr * lr_scale,
                )
            )
    return CVResult(
        metric_name="accuracy" if data.task == "classification" else "r2",
        train_loss=np.stack(curves["train"]),
        val_loss=np.stack(curves["val"]),
        val_metric=np.stack(curves["metric"]),
        epoch_seconds=np.asarray(epoch_seconds),
        batch_size=batch_size,
        updates_per_epoch=n_steps,
    )


def _loss_fn(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Per-sample loss, shape ``(n_folds, batch)``."""
    if task == "classification":

        def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
            flat_outputs = outputs.reshape(-1, outputs.shape[-1])
            losses = torch.nn.functional.cross_entropy(
                flat_outputs, targets.reshape(-1), reduction="none"
            )
            return losses.view(targets.shape)

        return cross_entropy

    def squared_error(outputs: Tensor, targets: Tensor) -> Tensor:
        return (outputs.squeeze(-1) - targets) ** 2

    return squared_error


@torch.no_grad()
def _evaluate(model: StackedMLP, flat: Tensor, data: FoldData) -> tuple[Tensor, Tensor]:
    """Per-fold validation loss and metric (R² or accuracy), left on the device."""
    outputs = model.forward(flat, data.val_inputs)
    per_sample = _loss_fn(data.task)(outputs, data.val_targets)
    counts = data.val_mask.sum(dim=1)
    val_loss = (per_sample * data.val_mask).sum(dim=1) / counts
    if data.task == "classification":
        correct = (outputs.argmax(dim=-1) == data.val_targets).float()
        return val_loss, (correct * data.val_mask).sum(dim=1) / counts
    targets = data.val_targets
    mean = (targets * data.val_mask).sum(dim=1, keepdim=True) / counts.unsqueeze(1)
    total = (((targets - mean) ** 2) * data.val_mask).sum(dim=1)
    residual = val_loss * counts
    return val_loss, 1 - residual / total.clamp_min(torch.finfo(total.dtype).tiny)
