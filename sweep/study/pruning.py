"""Pruning decisions for a whole stack at once.

Optuna's ``trial.should_prune()`` has the pruner read the study's trials from storage for every
trial at every epoch; with the trials of a group RUNNING, each read fetches all of them again
(about 7 ms each on SQLite). The median and percentile pruners only look at the COMPLETE trials
and the trial's own intermediate values, so a stack decides for all its trials from one read per
epoch, taken after every trial reported that epoch. Other pruners keep Optuna's own path.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class _StudyRead:
    """The study as a percentile pruner reads it, read from storage once."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self.trials = study.get_trials(deepcopy=False)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [trial for trial in self.trials if states is None or trial.state in states]

    @property
    def direction(self) -> StudyDirection:
        return self._study.direction


def trials_to_prune(study: optuna.Study, trials: Sequence[optuna.Trial]) -> set[int]:
    """Numbers of the ``trials`` the study's pruner stops, after the epoch all of them just
    reported: the decisions ``trial.should_prune()`` would make, from one read of the study."""
    if not trials:
        return set()
    pruner = study.pruner
    if not isinstance(pruner, optuna.pruners.PercentilePruner):  # the median pruner is one
        return {trial.number for trial in trials if trial.should_prune()}
    read = _StudyRead(study)
    frozen = {trial.number: trial for trial in read.trials}
    return {
        trial.number
        for trial in trials
        if pruner.prune(read, frozen[trial.number])  # type: ignore[arg-type]
    }
