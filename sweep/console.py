"""What a sweep prints: the progress bar and the tables at the end."""

from __future__ import annotations

import contextlib
import sys

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from sweep.batch_size_summary import BatchSizeRow
from sweep.trial_record import record_of


class TrialProgress:
    """A tqdm bar over the study's budget, advanced as each trial ends."""

    def __init__(self, *, total: int, done: int, study_name: str, enabled: bool = True) -> None:
        self.bar = tqdm(
            disable=not enabled,
            total=total,
            initial=done,
            desc=f"study {study_name}",
            unit="trial",
            file=sys.stderr,
        )

    def __call__(self, study: optuna.Study, session: object) -> None:
        self.bar.update(1)
        with contextlib.suppress(ValueError):  # no completed trial yet
            self.bar.set_postfix(best=f"{study.best_value:.4g}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def trials_table(trials: list[FrozenTrial], *, limit: int = 8) -> str:
    """The best trials first, then a count of the rest."""
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = sorted(
        (t for t in finished if t.state == TrialState.COMPLETE), key=lambda t: t.value
    )
    lines = [
        f"{'trial':>5}  {'batch':>6}  {'optimizer':<9}  {'lr':>9}  {'cv val loss':>17}  {'metric':>15}"
    ]
    for trial in complete[:limit]:
        record = record_of(trial)
        lines.append(
            f"{trial.number:>5}  {trial.params['batch_size']!s:>6}  {trial.params['optimizer']:<9}  "
            f"{trial.params['lr']:>9.3g}  {trial.value:>8.4f} ± {record['cv_val_loss_std']:<6.4f}  "
            f"{record['metric_name']} {record['cv_metric']:>7.3f}"
        )
    pruned = len(finished) - len(complete)
    lines.append(
        f"{len(complete)} complete, {pruned} pruned (by the pruner or with a recorded reason)"
    )
    return "\n".join(lines)


def batch_size_table(rows: list[BatchSizeRow]) -> str:
    lines = [
        f"{'batch':>6}  {'done':>4}  {'pruned':>6}  {'best cv val loss':>18}  {'metric':>7}  {'s/epoch':>8}"
    ]
    for row in rows:
        lines.append(
            f"{row.batch_size:>6}  {row.completed:>4}  {row.pruned:>6}  "
            f"{row.best_cv_val_loss:>9.4f} ± {row.best_cv_val_loss_std:<6.4f}  "
            f"{row.best_metric:>7.3f}  {row.median_epoch_seconds:>8.4f}"
        )
    return "\n".join(lines)
