"""Per-batch-size measurements over a study's trials: what the results table and MLflow show."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from sweep.trial_record import record_of


@dataclass(frozen=True)
class BatchSizeRow:
    batch_size: str  # "1", "64", ... or "full"
    completed: int
    pruned: int
    best_cv_val_loss: float  # NaN when no trial of this size completed
    best_cv_val_loss_std: float  # over folds, for the best trial
    best_metric: float  # R² or accuracy of that trial
    median_epoch_seconds: float
    updates_per_epoch: int | None


def batch_size_rows(trials: list[FrozenTrial]) -> list[BatchSizeRow]:
    """One row per batch size tried, smallest first and ``full`` last."""
    by_size: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and "batch_size" in trial.params:
            by_size.setdefault(str(trial.params["batch_size"]), []).append(trial)
    rows = []
    for size in sorted(by_size, key=lambda s: float("inf") if s == "full" else float(s)):
        group = by_size[size]
        complete = [t for t in group if t.state == TrialState.COMPLETE]
        best = min(complete, key=lambda t: t.value) if complete else None
        seconds = [record_of(t)["epoch_seconds"] for t in group if "epoch_seconds" in record_of(t)]
        record = record_of(best) if best else {}
        rows.append(
            BatchSizeRow(
                batch_size=size,
                completed=len(complete),
                pruned=len(group) - len(complete),
                best_cv_val_loss=best.value if best else float("nan"),
                best_cv_val_loss_std=record.get("cv_val_loss_std", float("nan")),
                best_metric=record.get("cv_metric", float("nan")),
                median_epoch_seconds=float(np.median(seconds)) if seconds else float("nan"),
                updates_per_epoch=record.get("updates_per_epoch"),
            )
        )
    return rows


def as_metrics(rows: list[BatchSizeRow]) -> dict[str, float]:
    """Flat MLflow metric names, e.g. ``batch_size_64/best_cv_val_loss``."""
    metrics: dict[str, float] = {}
    for row in rows:
        prefix = f"batch_size_{row.batch_size}"
        metrics[f"{prefix}/completed_trials"] = row.completed
        metrics[f"{prefix}/pruned_trials"] = row.pruned
        for name in (
            "best_cv_val_loss",
            "best_cv_val_loss_std",
            "best_metric",
            "median_epoch_seconds",
        ):
            value = getattr(row, name)
            if np.isfinite(value):
                metrics[f"{prefix}/{name}"] = value
    return metrics
