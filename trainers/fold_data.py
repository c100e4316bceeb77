"""A data set and its folds on the device, and the per-epoch permutations drawn from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trainers.data import Dataset
from trainers.folds import Fold, fit_fold_scaling


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
