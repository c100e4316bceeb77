"""Parameter importances are computed with the report, where scikit-learn is loaded, and the
figure is drawn from those numbers (in the tracking process, which has only matplotlib)."""

from __future__ import annotations

import optuna
import pytest

from sweep.report.importances import GivenImportances, param_importances
from sweep.report.snapshot import snapshot_of


def _study(n_trials: int) -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(
        lambda t: (
            t.suggest_float("lr", 1e-4, 1.0, log=True) * 10 + t.suggest_int("batch", 1, 64) * 1e-3
        ),
        n_trials=n_trials,
    )
    return study


def test_the_report_s_importances_are_optuna_s_own() -> None:
    study = _study(12)
    ours = param_importances(snapshot_of(study))
    theirs = optuna.importance.get_param_importances(study)
    assert ours == pytest.approx(dict(theirs))
    assert set(ours) == {"lr", "batch"} and ours["lr"] > ours["batch"]


def test_too_few_completed_trials_have_no_importances() -> None:
    assert param_importances(snapshot_of(_study(2))) == {}


@pytest.mark.slow
def test_the_figure_shows_the_given_numbers() -> None:
    from sweep.report.figures import close_all, plt

    study = _study(12)
    given = {"lr": 0.8, "batch": 0.2}
    axis = optuna.visualization.matplotlib.plot_param_importances(
        study, evaluator=GivenImportances(given)
    )
    try:
        widths = sorted(round(bar.get_width(), 2) for bar in axis.patches)
        assert widths == [0.2, 0.8]
    finally:
        close_all({"importances": axis.figure})
        plt.close("all")
