"""Which hyperparameters mattered: Optuna's parameter importances of the finished trials.

Computed once with the report, in the sweep's process, where scikit-learn and SciPy are loaded
(Optuna's evaluators use them; ``optuna.importance`` loads scikit-learn's ensembles as it is
imported, so only :func:`param_importances` imports it). The figure is drawn from the numbers
(:func:`sweep.report.figures.importance_figure`), where only matplotlib is loaded.
"""

from __future__ import annotations

import warnings

from sweep.report.snapshot import StudySnapshot, as_study
from sweep.study.objectives import cv_loss

MIN_COMPLETE = 3  # fewer completed trials say nothing about importance


def param_importances(snapshot: StudySnapshot) -> dict[str, float]:
    """Parameter -> importance (Optuna's default evaluator, summing to 1) of the CV loss over
    the completed trials, largest first; empty with fewer than :data:`MIN_COMPLETE` of them or
    when Optuna cannot tell (a parameter that never varied)."""
    if len(snapshot.complete) < MIN_COMPLETE:
        return {}
    import optuna.importance

    target = {"target": cv_loss} if snapshot.n_objectives > 1 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        try:
            importances = optuna.importance.get_param_importances(as_study(snapshot), **target)
        except (ValueError, RuntimeError):
            return {}
    return {name: float(value) for name, value in importances.items()}
