"""Which trial a study recommends: the best trial of the batch size the one-standard-error rule
picks (see :func:`sweep.batch_size_report.choose_batch_size`)."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.batch_size_report import BatchSizeChoice, batch_size_rows, choose_batch_size
from sweep.objectives import cv_loss


def recommended_trial(study: optuna.Study) -> tuple[FrozenTrial, BatchSizeChoice] | None:
    """The recommended trial and the batch-size choice behind it; None before any completes."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    choice = choose_batch_size(batch_size_rows(study.get_trials(deepcopy=False)))
    if not complete or choice is None:
        return None
    at_choice = [t for t in complete if str(t.params["batch_size"]) == choice.batch_size]
    return min(at_choice, key=cv_loss), choice
