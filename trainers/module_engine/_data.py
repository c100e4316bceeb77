"""Samples of any shape, their targets and their folds, on the device once per study."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainers.fold_data import FoldData
from trainers.folds import Fold


@dataclass(frozen=True)
class ModuleFoldData:
    """A data set of any per-sample shape and its folds, on the device.

    Unlike :class:`~trainers.fold_data.FoldData` nothing is standardised here: the samples are
    stored once and each fold indexes into them. Scale them beforehand, or inside the model.
    """

    device: torch.device
    inputs: Tensor  # (n_rows, *sample_shape)
    targets: Tensor  # (n_rows, *target_shape): int64 class indices, or float32 values
    n_outputs: int  # what the model factory is asked for: classes, or values per sample
    train_rows: Tensor  # (n_folds, max_train) rows into inputs, padded with the fold's first row
    train_sizes: tuple[int, ...]
    val_inputs: Tensor  # (n_folds, max_val, *sample_shape), padded with the fold's first row
    val_targets: Tensor  # (n_folds, max_val, *target_shape)
    val_mask: Tensor  # (n_folds, max_val) float: 1 for real rows, 0 for padding
    val_sizes: tuple[int, ...]

    @property
    def n_folds(self) -> int:
        return len(self.train_sizes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape: what the model factory receives as ``input_shape``."""
        return tuple(self.inputs.shape[1:])


def prepare_module_folds(
    X: Any,
    y: Any,
    folds: Sequence[Fold] | Sequence[tuple[Any, Any]],
    *,
    device: torch.device,
    n_outputs: int | None = None,
) -> ModuleFoldData:
    """Put samples, targets and folds on ``device`` for :func:`train_module_stack`.

    Args:
        X: array or tensor ``(n_samples, *sample_shape)``; floats become float32, integers
            (token ids) stay integers.
        y: ``(n_samples,)`` or ``(n_samples, *target_shape)``; integers are class indices.
        folds: :class:`~trainers.folds.Fold` objects or ``(train_idx, val_idx)`` pairs, as a
            scikit-learn splitter's ``split(X, y)`` yields them.
        n_outputs: what to ask the model for; by default the number of classes (integer
            targets) or the number of values per sample (float targets).

    Example:
        >>> images = np.random.rand(100, 1, 8, 8)
        >>> labels = np.random.randint(0, 3, 100)
        >>> folds = list(StratifiedKFold(5).split(images[:, 0, 0], labels))
        >>> data = prepare_module_folds(images, labels, folds, device=torch.device("cpu"))
    """
    inputs = torch.as_tensor(np.asarray(X) if not isinstance(X, Tensor) else X)
    targets = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
    inputs = inputs.float() if inputs.is_floating_point() else inputs
    if targets.dtype == torch.bool or targets.is_floating_point():
        targets = targets.float()
    else:
        targets = targets.long()
    n_samples = inputs.shape[0] if inputs.dim() else 0
    if inputs.dim() < 2 or targets.dim() < 1 or targets.shape[0] != n_samples:
        raise ValueError(
            f"X must be (n_samples, *sample_shape) and y (n_samples, ...), but got X of shape "
            f"{tuple(inputs.shape)} and y of shape {tuple(targets.shape)}."
        )
    if n_outputs is None:
        if targets.is_floating_point():
            n_outputs = int(np.prod(targets.shape[1:], dtype=np.int64))
        else:
            n_outputs = int(targets.max()) + 1
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, but got n_outputs={n_outputs}.")
    splits = [_indices(fold, k, n_samples) for k, fold in enumerate(folds)]
    if not splits:
        raise ValueError("folds is empty; pass at least one (train_idx, val_idx) pair.")
    train_rows = _padded([train for train, _ in splits])
    val_rows = _padded([val for _, val in splits])
    val_mask = torch.zeros(val_rows.shape)
    for k, (_, val) in enumerate(splits):
        val_mask[k, : len(val)] = 1
    inputs, targets = inputs.to(device), targets.to(device)
    val_rows = val_rows.to(device)
    return ModuleFoldData(
        device=device,
        inputs=inputs,
        targets=targets,
        n_outputs=n_outputs,
        train_rows=train_rows.to(device),
        train_sizes=tuple(len(train) for train, _ in splits),
        val_inputs=inputs[val_rows],
        val_targets=targets[val_rows],
        val_mask=val_mask.to(device),
        val_sizes=tuple(len(val) for _, val in splits),
    )


def module_folds_from(data: FoldData) -> ModuleFoldData:
    """The same folds (standardised per fold) for the module engine: a tabular study can train
    a model of its own on exactly the data the MLP engine uses."""
    return ModuleFoldData(
        device=data.device,
        inputs=data.inputs,
        targets=data.targets,
        n_outputs=data.n_outputs,
        train_rows=data.train_rows,
        train_sizes=data.train_sizes,
        val_inputs=data.val_inputs,
        val_targets=data.val_targets,
        val_mask=data.val_mask,
        val_sizes=data.val_sizes,
    )


def _indices(fold: Fold | tuple[Any, Any], k: int, n_samples: int) -> tuple[Tensor, Tensor]:
    train, val = (fold.train_idx, fold.val_idx) if isinstance(fold, Fold) else fold
    parts = []
    for part, idx in (("train", train), ("validation", val)):
        rows = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        if rows.dim() != 1 or rows.numel() == 0:
            raise ValueError(f"fold {k}: the {part} part must be a non-empty 1-d index array.")
        if int(rows.min()) < 0 or int(rows.max()) >= n_samples:
            raise ValueError(
                f"fold {k}: {part} indices must lie in 0..{n_samples - 1}, but got "
                f"{int(rows.min())}..{int(rows.max())}."
            )
        parts.append(rows)
    return parts[0], parts[1]


def _padded(rows: list[Tensor]) -> Tensor:
    """``(n_folds, max_len)`` rows, each padded with its own first row (real data, masked)."""
    padded = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.int64)
    for k, fold_rows in enumerate(rows):
        padded[k] = fold_rows[0]
        padded[k, : len(fold_rows)] = fold_rows
    return padded
