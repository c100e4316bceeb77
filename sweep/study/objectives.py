"""What a trial is scored by. The first objective is always the CV-mean validation loss; a
multi-objective study adds the time per epoch, and its Pareto front is the trade-off."""

from __future__ import annotations

import math
from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState


def cv_loss(trial: FrozenTrial) -> float:
    """The trial's CV-mean validation loss (its first objective); NaN if it has none."""
    return trial.values[0] if trial.values else math.nan


def argmin_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The completed trial with the lowest CV loss, whatever the number of objectives."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return min(complete, key=cv_loss) if complete else None


def objective_values(
    objectives: tuple[str, ...], *, loss: float, epoch_seconds: float
) -> list[float]:
    measured = {"cv_loss": loss, "epoch_seconds": epoch_seconds}
    return [measured[name] for name in objectives]


def pareto_front(trials: Sequence[FrozenTrial], n_objectives: int) -> list[dict]:
    """The non-dominated completed trials of a multi-objective study (every objective is
    minimised): CV loss vs seconds per epoch, fastest first. [] for one objective."""
    if n_objectives < 2:
        return []
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    front = [t for t in complete if not any(_dominates(o.values, t.values) for o in complete)]
    return [
        {
            "trial_number": t.number,
            "batch_size": str(t.params["batch_size"]),
            "optimizer": t.params["optimizer"],
            "lr": t.params["lr"],
            "cv_loss": t.values[0],
            "epoch_seconds": t.values[1],
        }
        for t in sorted(front, key=lambda t: (t.values[1], t.number))
    ]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))
