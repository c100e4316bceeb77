"""The learning-curve plot picks one trial per batch size, preferring completed ones."""

from __future__ import annotations

import matplotlib.pyplot as plt
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from sweep.report.learning_curves_plot import best_trial_per_batch_size, learning_curves_figure

DISTRIBUTIONS = {
    "batch_size": CategoricalDistribution([8, "full"]),
    "optimizer": CategoricalDistribution(["sgd"]),
    "lr": FloatDistribution(1e-3, 1.0, log=True),
}


def _trial(batch_size, state, curve, value=None):
    return create_trial(
        state=state,
        value=value,
        params={"batch_size": batch_size, "optimizer": "sgd", "lr": 0.01},
        distributions=DISTRIBUTIONS,
        intermediate_values=dict(enumerate(curve, start=1)),
        user_attrs={"record": {"train_loss_curve": list(curve)}},
    )


def test_completed_beats_pruned_and_lower_loss_wins() -> None:
    trials = [
        _trial(8, TrialState.COMPLETE, [1.0, 0.6], value=0.6),
        _trial(8, TrialState.COMPLETE, [1.0, 0.4], value=0.4),
        _trial(8, TrialState.PRUNED, [0.1]),
        _trial("full", TrialState.PRUNED, [1.0]),
        _trial("full", TrialState.PRUNED, [1.1, 1.05]),
    ]
    chosen = best_trial_per_batch_size(trials)
    assert list(chosen) == ["8", "full"]
    assert chosen["8"].value == 0.4
    assert chosen["full"].intermediate_values == {1: 1.1, 2: 1.05}  # the one that got furthest
    figure = learning_curves_figure(trials)
    labels = [line.get_label() for line in figure.axes[1].get_lines()]
    assert labels[1].endswith("(pruned)") and not labels[0].endswith("(pruned)")
    plt.close(figure)


def test_empty_study_still_draws() -> None:
    figure = learning_curves_figure(optuna.create_study().trials)
    assert figure.axes[1].texts[0].get_text() == "no completed trial yet"
    plt.close(figure)
