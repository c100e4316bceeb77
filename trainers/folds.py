"""Cross-validation folds and per-fold standardisation fitted on train rows only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from trainers.data import DataError, Dataset

__all__ = ["Fold", "FoldScaling", "fit_fold_scaling", "make_folds"]


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/validation split.

    Attributes:
        train_idx: sorted int64 row indices used for fitting.
        val_idx: sorted int64 row indices used for scoring.
    """

    train_idx: np.ndarray
    val_idx: np.ndarray


@dataclass(frozen=True, eq=False)
class FoldScaling:
    """Standardisation statistics per fold, fitted on each fold's train rows only.

    The training engine applies ``(X[rows] - x_mean[k]) / x_std[k]`` for fold ``k``, and for
    regression trains on ``(y - y_mean[k]) / y_std[k]``.

    Attributes:
        x_mean: (n_folds, n_features) float32.
        x_std: (n_folds, n_features) float32; a zero std (constant column) is replaced by 1.
        y_mean: (n_folds,) float32 regression target mean; zeros for classification.
        y_std: (n_folds,) float32 regression target std; ones for classification; a zero std
            is replaced by 1.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray


def make_folds(
    dataset: Dataset,
    *,
    n_folds: int,
    stratify: bool | None = None,
    seed: int = 0,
    splitter: Any = None,
) -> list[Fold]:
    """Split a data set into cross-validation folds.

    By default this uses ``KFold(n_folds, shuffle=True, random_state=seed)``, or
    ``StratifiedKFold`` with the same arguments when ``stratify`` is True, or when it is None
    and the task is classification.

    Args:
        dataset: the data to split.
        n_folds: number of folds (>= 2, <= number of rows). Ignored when ``splitter`` is given.
        stratify: stratify by class; None means "yes for classification, no for regression".
            Ignored when ``splitter`` is given.
        seed: shuffling seed of the default splitter.
        splitter: any scikit-learn style splitter with a ``split(X, y)`` method, used as-is.

    Returns:
        One :class:`Fold` per split, with sorted int64 indices.

    Raises:
        DataError: the folds cannot be made (too few rows, a class smaller than n_folds,
            stratify=True on a regression task, or a splitter that yields bad splits).

    Example: ``folds = make_folds(load_dataset("iris"), n_folds=5)``
    """
    if splitter is None:
        splitter = _default_splitter(dataset, n_folds=n_folds, stratify=stratify, seed=seed)
        name = f"{type(splitter).__name__}(n_splits={n_folds})"
    else:
        if not callable(getattr(splitter, "split", None)):
            raise DataError(
                f"{dataset.name}: splitter={splitter!r} has no split(X, y) method; pass a "
                "scikit-learn splitter such as KFold(5) or leave splitter unset."
            )
        name = repr(splitter)
    try:
        splits = list(splitter.split(dataset.X, dataset.y))
    except ValueError as e:
        raise DataError(f"{dataset.name}: splitter {name} cannot split the data: {e}") from e
    if not splits:
        raise DataError(f"{dataset.name}: splitter {name} produced no folds.")
    return [_checked_fold(dataset, name, k, tr, va) for k, (tr, va) in enumerate(splits)]


def _default_splitter(
    dataset: Dataset, *, n_folds: int, stratify: bool | None, seed: int
) -> KFold | StratifiedKFold:
    n = dataset.n_samples
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise DataError(
            f"{dataset.name}: n_folds={n_folds!r} must be an integer >= 2 for "
            "cross-validation; use n_folds=5 (or any value between 2 and the number of rows)."
        )
    n_folds = int(n_folds)
    if n_folds > n:
        raise DataError(
            f"{dataset.name}: Cannot have number of folds n_folds={n_folds} greater than the "
            f"number of samples: n_samples={n}. Use n_folds <= {n} or more data."
        )
    if stratify is None:
        stratify = dataset.task == "classification"
    if not stratify:
        return KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    if dataset.task != "classification":
        raise DataError(
            f"{dataset.name}: stratify=True needs a classification task, but the task is "
            f"{dataset.task!r}; set `stratify: false` (or leave it unset)."
        )
    counts = np.bincount(dataset.y, minlength=dataset.n_classes or 0)
    for k, count in enumerate(counts):
        if count < n_folds:
            label = dataset.class_labels[k] if dataset.class_labels else k
            raise DataError(
                f"{dataset.name}: class {label!r} has only {count} member(s), fewer than "
                f"n_folds={n_folds}; stratified folds need every class in every validation "
                f"fold. Use n_folds <= {count} or set `stratify: false`."
            )
    return StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)


def _checked_fold(dataset: Dataset, name: str, k: int, train: Any, val: Any) -> Fold:
    n = dataset.n_samples
    train_idx = np.sort(np.asarray(train, dtype=np.int64))
    val_idx = np.sort(np.asarray(val, dtype=np.int64))
    where = f"{dataset.name}: splitter {name}, fold {k}"
    for part, idx in (("train", train_idx), ("validation", val_idx)):
        if idx.ndim != 1 or idx.size == 0:
            raise DataError(f"{where}: the {part} part is empty; every fold needs both parts.")
        if idx[0] < 0 or idx[-1] >= n:
            bad = int(idx[0] if idx[0] < 0 else idx[-1])
            raise DataError(
                f"{where}: {part} row index {bad} is out of range for n_samples={n}; the "
                "splitter must return row positions (0..n_samples-1)."
            )
    overlap = np.intersect1d(train_idx, val_idx)
    if overlap.size:
        raise DataError(
            f"{where}: {overlap.size} row(s) (first: {int(overlap[0])}) are in both the train "
            "and the validation part, which leaks validation data into training; use a "
            "splitter with disjoint parts."
        )
    return Fold(train_idx=train_idx, val_idx=val_idx)


def fit_fold_scaling(dataset: Dataset, folds: Sequence[Fold]) -> FoldScaling:
    """Fit per-fold standardisation on each fold's train rows (validation rows never leak in).

    Statistics are computed in float64 with ``ddof=0`` and stored as float32.

    Args:
        dataset: the data the folds index into.
        folds: folds from :func:`make_folds`.

    Returns:
        The stacked per-fold statistics.

    Raises:
        DataError: there are no folds, or a fold has no train rows.

    Example: ``scaling = fit_fold_scaling(ds, make_folds(ds, n_folds=5))``
    """
    if len(folds) == 0:
        raise DataError(f"{dataset.name}: no folds to fit scaling on; call make_folds first.")
    x_mean, x_std, y_mean, y_std = [], [], [], []
    for k, fold in enumerate(folds):
        rows = np.asarray(fold.train_idx, dtype=np.int64)
        if rows.size == 0:
            raise DataError(f"{dataset.name}: fold {k} has no train rows to fit scaling on.")
        m, s = _mean_std(dataset.X[rows])
        x_mean.append(m)
        x_std.append(s)
        if dataset.task == "regression":
            m, s = _mean_std(dataset.y[rows])
            y_mean.append(m)
            y_std.append(s)
        else:
            y_mean.append(0.0)
            y_std.append(1.0)
    f32 = np.float32
    return FoldScaling(
        x_mean=np.asarray(x_mean, dtype=f32).reshape(len(folds), dataset.n_features),
        x_std=np.asarray(x_std, dtype=f32).reshape(len(folds), dataset.n_features),
        y_mean=np.asarray(y_mean, dtype=f32),
        y_std=np.asarray(y_std, dtype=f32),
    )


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std in float64; a constant column gets std 1 so scaling is a no-op."""
    v = np.asarray(values, dtype=np.float64)
    mean = v.mean(axis=0)
    std = v.std(axis=0)
    constant = (v.max(axis=0) == v.min(axis=0)) | (std == 0)
    return mean, np.where(constant, 1.0, std)
