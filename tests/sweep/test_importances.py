"""Parameter importances are computed with the report, where scikit-learn is loaded, and the
figure is drawn from those numbers (in the tracking process, which has only matplotlib)."""

from __future__ import annotations

import optuna
import pytest

from sweep.report.importances import param_importances
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
def test_the_figure_shows_the_given_numbers_largest_on_top() -> None:
    from sweep.report.figures import close_all, importance_figure

    figure = importance_figure({"lr": 0.8, "optimizer": 0.195, "batch_size": 0.005})
    try:
        (axis,) = figure.axes
        bars = sorted(axis.patches, key=lambda bar: bar.get_y())
        assert [round(bar.get_width(), 3) for bar in bars] == [0.005, 0.195, 0.8]
        assert [label.get_text() for label in axis.get_yticklabels()][-1] == "lr"
        shown = {text.get_text() for text in axis.texts}
        assert {"0.80", "0.20", "<0.01"} <= shown
    finally:
        close_all({"importances": figure})
