"""Which hyperparameters mattered: Optuna's parameter importances of the finished trials.

Computed once with the report, where the sweep has scikit-learn and SciPy loaded (Optuna's
evaluators use them), and handed to the figure as numbers (:class:`GivenImportances`), so the
figure can be drawn where only matplotlib is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import optuna
from optuna.importance import BaseImportanceEvaluator
from optuna.study import Study
from optuna.trial import FrozenTrial

from sweep.report.snapshot import StudySnapshot, as_study
from sweep.study.objectives import cv_loss

MIN_COMPLETE = 3  # fewer completed trials say nothing about importance


def param_importances(snapshot: StudySnapshot) -> dict[str, float]:
    """Parameter -> importance (Optuna's default evaluator, summing to 1) of the CV loss over
    the completed trials; empty with fewer than :data:`MIN_COMPLETE` of them or when Optuna
    cannot tell (a parameter that never varied)."""
    if len(snapshot.complete) < MIN_COMPLETE:
        return {}
    target = {"target": cv_loss} if snapshot.n_objectives > 1 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        try:
            importances = optuna.importance.get_param_importances(as_study(snapshot), **target)
        except (ValueError, RuntimeError):
            return {}
    return {name: float(value) for name, value in importances.items()}


class GivenImportances(BaseImportanceEvaluator):
    """An evaluator that answers importances computed earlier (for Optuna's plot).

    Example:
        >>> evaluator = GivenImportances({"lr": 0.7, "batch_size": 0.3})
        >>> evaluator.evaluate(study)  # doctest: +SKIP
        {'lr': 0.7, 'batch_size': 0.3}
    """

    def __init__(self, importances: Mapping[str, float]) -> None:
        self.importances = dict(importances)

    def evaluate(
        self,
        study: Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        names = self.importances if params is None else params
        return {name: self.importances[name] for name in names if name in self.importances}
