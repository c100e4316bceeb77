"""What a trial is scored by. The first objective is always the CV-mean validation loss; a
multi-objective study adds the time per epoch, and its Pareto front is the trade-off."""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial, TrialState


def cv_loss(trial: FrozenTrial) -> float:
    """The trial's CV-mean validation loss (its first objective); NaN if it has none."""
    return trial.values[0] if trial.values else math.nan


def is_multi_objective(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def argmin_trial(study: optuna.Study) -> FrozenTrial | None:
    """The completed trial with the lowest CV loss, whatever the number of objectives."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(complete, key=cv_loss) if complete else None


def objective_values(
    objectives: tuple[str, ...], *, loss: float, epoch_seconds: float
) -> list[float]:
    measured = {"cv_loss": loss, "epoch_seconds": epoch_seconds}
    return [measured[name] for name in objectives]


def pareto_front(study: optuna.Study) -> list[dict]:
    """The non-dominated trials of a multi-objective study: CV loss vs seconds per epoch."""
    if not is_multi_objective(study):
        return []
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    return [
        {
            "trial_number": t.number,
            "batch_size": str(t.params["batch_size"]),
            "optimizer": t.params["optimizer"],
            "lr": t.params["lr"],
            "cv_loss": t.values[0],
            "epoch_seconds": t.values[1],
        }
        for t in front
    ]
