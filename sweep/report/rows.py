"""The batch-size report: the folklore's table (update frequency, memory, convergence, noise,
generalisation, time) measured on the user's own data and device, one row per batch size tried,
and the batch size chosen by the one-standard-error rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from sweep.study.objectives import cv_loss
from sweep.study.trial_record import TrialRecord, record_of, val_loss_curve

CONVERGENCE_TOLERANCE = 0.01  # "converged": within 1% of the trial's best validation loss


@dataclass(frozen=True)
class BatchSizeRow:
    """One batch size, aggregated over its trials. Losses are CV means; ``*_std`` over folds."""

    batch_size: str  # "1", "64", ... or "full"
    completed: int
    pruned: int
    best_cv_loss: float
    best_cv_loss_std: float
    best_cv_metric: float
    best_cv_metric_std: float
    median_cv_loss: float  # the median completed trial, by CV loss
    median_cv_loss_std: float
    generalisation_gap: float  # best trial: last validation loss - last training loss
    updates_per_epoch: float
    seconds_per_epoch: float  # median over trials, each charged its share of its stack
    samples_per_second: float  # training samples per epoch over seconds_per_epoch
    peak_memory_bytes: float  # median over trials of each one's share of its stack's peak
    memory_kind: str  # "cuda peak allocated" or "estimate"
    epochs_to_converge: float  # median epochs to within 1% of a trial's best validation loss
    n_folds: int

    @property
    def standard_error(self) -> float:
        """Standard error over folds of the best trial's CV loss."""
        return self.best_cv_loss_std / math.sqrt(max(self.n_folds, 1))

    @property
    def note(self) -> str:
        """``all pruned (k)`` for a batch size with no completed trial: its loss columns are
        empty, never NaN, and the figures leave it out."""
        return f"all pruned ({self.pruned})" if self.completed == 0 else ""

    def as_dict(self) -> dict:
        return {**asdict(self), "standard_error": self.standard_error}

    def as_json(self) -> dict:
        """As :meth:`as_dict`, with the note, and None for what was not measured (JSON has no
        NaN)."""
        values = {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in self.as_dict().items()
        }
        return {**values, "note": self.note}


@dataclass(frozen=True)
class BatchSizeChoice:
    batch_size: str  # the answer
    rule: str  # "one-standard-error" or "argmin" (when there is nothing to trade)
    argmin_batch_size: str  # the batch size of the lowest CV loss
    threshold: float  # best CV loss + its standard error


COLUMNS = [f.name for f in fields(BatchSizeRow)] + ["standard_error", "note"]


def batch_size_rows(trials: list[FrozenTrial]) -> list[BatchSizeRow]:
    """One row per batch size tried, smallest first and ``full`` last."""
    groups: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and "batch_size" in trial.params:
            groups.setdefault(str(trial.params["batch_size"]), []).append(trial)
    return [_row(size, groups[size]) for size in sorted(groups, key=batch_order)]


def _row(size: str, group: list[FrozenTrial]) -> BatchSizeRow:
    complete = sorted((t for t in group if t.state == TrialState.COMPLETE), key=cv_loss)
    best = record_of(complete[0]) if complete else TrialRecord()
    median = record_of(complete[(len(complete) - 1) // 2]) if complete else TrialRecord()
    records = [record_of(t) for t in group]
    seconds = _median([r.epoch_seconds for r in records])
    samples = _median([r.n_train_samples for r in records])
    converge = _median([_epochs_to_converge(val_loss_curve(t)) for t in complete])
    train_curve = best.train_loss_curve or [math.nan]
    return BatchSizeRow(
        batch_size=size,
        completed=len(complete),
        pruned=len(group) - len(complete),
        best_cv_loss=best.cv_val_loss,
        best_cv_loss_std=_sample_std(best.fold_val_loss, best.cv_val_loss_std),
        best_cv_metric=best.cv_metric,
        best_cv_metric_std=best.cv_metric_std,
        median_cv_loss=median.cv_val_loss,
        median_cv_loss_std=_sample_std(median.fold_val_loss, median.cv_val_loss_std),
        generalisation_gap=best.cv_val_loss - train_curve[-1],
        updates_per_epoch=_median([r.updates_per_epoch for r in records]),
        seconds_per_epoch=seconds,
        samples_per_second=samples / seconds if seconds > 0 else math.nan,
        peak_memory_bytes=_median([r.memory_per_trial for r in records]),
        memory_kind=next((r.memory_kind for r in records if r.memory_kind != "n/a"), "n/a"),
        epochs_to_converge=converge,
        n_folds=len(best.fold_val_loss),
    )


def choose_batch_size(rows: list[BatchSizeRow]) -> BatchSizeChoice | None:
    """The largest batch size whose best CV loss is within one standard error of the best.

    Larger batches cost less per epoch, so among sizes the data cannot tell apart the largest
    wins. None when no batch size has a completed trial.
    """
    scored = [row for row in rows if math.isfinite(row.best_cv_loss)]
    if not scored:
        return None
    best = min(scored, key=lambda row: row.best_cv_loss)
    error = best.standard_error if math.isfinite(best.standard_error) else 0.0
    threshold = best.best_cv_loss + error
    within = [row for row in scored if row.best_cv_loss <= threshold]
    chosen = max(within, key=lambda row: batch_order(row.batch_size))
    rule = "one-standard-error" if len(scored) > 1 and error > 0 else "argmin"
    return BatchSizeChoice(chosen.batch_size, rule, best.batch_size, threshold)


def as_metrics(rows: list[BatchSizeRow]) -> dict[str, float]:
    """Flat MLflow metric names, e.g. ``batch_size_64/best_cv_loss``; NaNs left out."""
    metrics: dict[str, float] = {}
    for row in rows:
        for key, value in row.as_dict().items():
            if key not in ("batch_size", "memory_kind") and math.isfinite(float(value)):
                metrics[f"batch_size_{row.batch_size}/{key}"] = float(value)
    return metrics


def rows_as_csv(rows: list[BatchSizeRow]) -> str:
    lines = [",".join(COLUMNS)]
    for row in rows:
        values = {**row.as_dict(), "note": row.note}
        lines.append(",".join(_csv_cell(values[column]) for column in COLUMNS))
    return "\n".join(lines) + "\n"


def _csv_cell(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def batch_order(batch_size: str) -> float:
    return math.inf if batch_size == "full" else float(batch_size)


def _epochs_to_converge(curve: list[float]) -> float:
    """First epoch (1-based) whose loss is within 1% of the curve's best."""
    if not curve:
        return math.nan
    best = min(curve)
    limit = best + CONVERGENCE_TOLERANCE * abs(best)
    return float(next(epoch for epoch, loss in enumerate(curve, start=1) if loss <= limit))


def _sample_std(values: list[float], fallback: float) -> float:
    """Standard deviation over folds with Bessel's correction (the recorded std has none)."""
    if len(values) > 1:
        return float(np.std(values, ddof=1))
    return float(fallback)


def _median(values: list[float]) -> float:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return float(np.median(finite)) if finite else math.nan
