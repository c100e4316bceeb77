"""The report as terminal tables: the best trials, the batch sizes and the Pareto front (the
noise scale's lines are :func:`sweep.report.noise.noise_lines`). No cell prints nan."""

from __future__ import annotations

import math

from optuna.trial import FrozenTrial, TrialState

from sweep.report.rows import BatchSizeChoice, BatchSizeRow
from sweep.study.objectives import cv_loss
from sweep.study.trial_record import record_of


def trials_table(trials: list[FrozenTrial], *, limit: int = 8) -> str:
    """The best trials first, then a count of the rest."""
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = sorted((t for t in finished if t.state == TrialState.COMPLETE), key=cv_loss)
    lines = [
        f"{'trial':>5}  {'batch':>6}  {'optimizer':<9}  {'lr':>9}  {'cv val loss':>17}  {'metric':>15}"
    ]
    for trial in complete[:limit]:
        record = record_of(trial)
        lines.append(
            f"{trial.number:>5}  {trial.params['batch_size']!s:>6}  {trial.params['optimizer']:<9}  "
            f"{trial.params['lr']:>9.3g}  {cv_loss(trial):>8.4f} ± "
            f"{_cell(record.cv_val_loss_std, '.4f'):<6}  "
            f"{record.metric_name} {_cell(record.cv_metric, '.3f'):>7}"
        )
    pruned = len(finished) - len(complete)
    lines.append(
        f"{len(complete)} complete, {pruned} pruned (by the pruner or with a recorded reason)"
    )
    return "\n".join(lines)


def batch_size_table(rows: list[BatchSizeRow], choice: BatchSizeChoice | None) -> str:
    """The batch-size report as a terminal table, with the chosen batch size under it."""
    header = (
        f"{'batch':>6} {'done':>4} {'pruned':>6} {'best cv loss':>17} {'median cv loss':>17} "
        f"{'metric':>7} {'gap':>7} {'upd/ep':>7} {'s/epoch':>8} {'samples/s':>10} "
        f"{'memory':>9} {'conv.ep':>7}"
    )
    lines = [header]
    for row in rows:
        if row.note:  # no completed trial: nothing to show but the count
            lines.append(f"{row.batch_size:>6} {row.completed:>4} {row.pruned:>6} {row.note:>17}")
            continue
        lines.append(
            f"{row.batch_size:>6} {row.completed:>4} {row.pruned:>6} "
            f"{_pm(row.best_cv_loss, row.best_cv_loss_std):>17} "
            f"{_pm(row.median_cv_loss, row.median_cv_loss_std):>17} "
            f"{_cell(row.best_cv_metric, '.3f'):>7} {_cell(row.generalisation_gap, '.3f'):>7} "
            f"{_cell(row.updates_per_epoch, '.0f'):>7} {_cell(row.seconds_per_epoch, '.4f'):>8} "
            f"{_cell(row.samples_per_second, ',.0f'):>10} "
            f"{_bytes(row.peak_memory_bytes):>9} {_cell(row.epochs_to_converge, '.0f'):>7}"
        )
    kinds = {row.memory_kind for row in rows}
    lines.append(
        "cv loss: mean ± std over folds; gap: validation - training loss of the best trial "
        "(the training loss is the epoch's mean batch loss: the gap is below 0 when validation "
        "is lower); "
        "s/epoch: each trial's share of its stack; memory: "
        + (
            "CUDA peak allocated"
            if kinds == {"cuda peak allocated"}
            else "estimated from tensor sizes"
        )
        + " per trial; conv.ep: epochs to within 1% of the best loss"
    )
    if choice is not None:
        lines.append(
            f"best batch size: {choice.batch_size} ({choice.rule} rule: largest batch within "
            f"{choice.threshold:.4f}); lowest CV loss at batch {choice.argmin_batch_size}"
        )
    return "\n".join(lines)


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f}"


def _cell(value: float, spec: str) -> str:
    """A figure, or n/a where there is none (never nan)."""
    return format(value, spec) if math.isfinite(value) else "n/a"


def _bytes(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def pareto_table(front: list[dict]) -> str:
    """A multi-objective study's Pareto front: no trial is both faster and better than these."""
    lines = ["Pareto front (CV loss vs seconds per epoch):",
             f"{'trial':>5}  {'batch':>6}  {'optimizer':<9}  {'lr':>9}  {'cv loss':>8}  {'s/epoch':>9}"]  # fmt: skip
    for point in front:
        lines.append(
            f"{point['trial_number']:>5}  {point['batch_size']:>6}  {point['optimizer']:<9}  "
            f"{point['lr']:>9.3g}  {point['cv_loss']:>8.4f}  {point['epoch_seconds']:>9.5f}"
        )
    return "\n".join(lines)
