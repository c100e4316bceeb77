"""Which trial a study recommends: the best trial of the batch size the one-standard-error rule
picks (see :func:`sweep.report.rows.choose_batch_size`)."""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState

from sweep.report.rows import BatchSizeChoice, batch_size_rows, choose_batch_size
from sweep.study.objectives import cv_loss


def recommended_trial(
    trials: Sequence[FrozenTrial],
) -> tuple[FrozenTrial, BatchSizeChoice] | None:
    """The recommended trial and the batch-size choice behind it; None before any completes."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    choice = choose_batch_size(batch_size_rows(list(trials)))
    if not complete or choice is None:
        return None
    at_choice = [t for t in complete if str(t.params["batch_size"]) == choice.batch_size]
    return min(at_choice, key=cv_loss), choice
