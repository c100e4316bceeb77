"""The batch-size report: the 1-SE rule on constructed scores, and every column of a real tiny
sweep checked against values computed by hand from the runs in MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.commands.run import RunOptions, run_sweep
from sweep.report.noise import noise_readings
from sweep.report.rows import BatchSizeRow, batch_size_rows, choose_batch_size
from sweep.report.selection import recommended_trial
from sweep.study.trial_record import record_of, run_id_of
from tests.conftest import local_tracking_uri, write_space


def _row(batch_size: str, loss: float, std: float, n_folds: int = 4) -> BatchSizeRow:
    nan = math.nan
    return BatchSizeRow(
        batch_size,
        1,
        0,
        loss,
        std,
        nan,
        nan,
        loss,
        std,
        nan,
        nan,
        nan,
        nan,
        nan,
        "estimate",
        nan,
        n_folds,
    )


@pytest.mark.parametrize(
    ("scores", "chosen", "argmin", "rule"),
    [
        # se of the best (batch 16) = 0.04 / 2 = 0.02: 64 (0.515) is within, full (0.53) is not
        (
            {"1": (0.60, 0.04), "16": (0.50, 0.04), "64": (0.515, 0.04), "full": (0.53, 0.04)},
            "64",
            "16",
            "one-standard-error",
        ),
        # the largest batch is also the best: nothing to trade
        ({"8": (0.70, 0.1), "full": (0.40, 0.1)}, "full", "full", "one-standard-error"),
        # no spread over folds: plain argmin
        ({"8": (0.30, 0.0), "32": (0.31, 0.0)}, "8", "8", "argmin"),
        # one batch size only
        ({"32": (0.3, 0.05)}, "32", "32", "argmin"),
    ],
)
def test_one_standard_error_rule(scores, chosen, argmin, rule) -> None:
    rows = [_row(size, loss, std) for size, (loss, std) in scores.items()]
    choice = choose_batch_size(rows)
    assert (choice.batch_size, choice.argmin_batch_size, choice.rule) == (chosen, argmin, rule)


def test_no_completed_trial_means_no_choice() -> None:
    assert choose_batch_size([_row("8", math.nan, math.nan)]) is None


SPACE = """
name: report
dataset: {source: synthetic, n_samples: 90, n_features: 3, seed: 0}
model: {hidden: [8]}
cv: {folds: 3, seed: 0}
training: {epochs: 5, device: cpu}
search:
  batch_size: [7, full]
  lr: [0.003, 0.03]
  optimizer: [adam]
sampler: {name: grid, seed: 0}
pruner: none
budget: {trials: 4, group_size: 1}
"""


@pytest.mark.slow
def test_report_columns_match_values_computed_by_hand(workdir: Path) -> None:
    run_sweep(RunOptions(space=str(write_space(workdir, "report", SPACE))))
    study = optuna.load_study(study_name="report", storage="sqlite:///mlruns/optuna.db")
    client = MlflowClient(local_tracking_uri())
    rows = {row.batch_size: row for row in batch_size_rows(study.trials)}
    assert set(rows) == {"7", "full"}
    for size, row in rows.items():
        trials = [t for t in study.trials if str(t.params["batch_size"]) == size]
        assert all(t.state == TrialState.COMPLETE for t in trials)
        best = min(trials, key=lambda t: t.value)
        run_id = run_id_of(best)
        fold_losses = [
            client.get_run(run_id).data.metrics[f"fold_{k}/score_val_loss"] for k in range(3)
        ]
        val_curve = [m.value for m in client.get_metric_history(run_id, "val_loss")]
        train_curve = [m.value for m in client.get_metric_history(run_id, "train_loss")]
        assert row.completed == 2 and row.pruned == 0
        assert row.best_cv_loss == pytest.approx(np.mean(fold_losses), rel=1e-6)
        assert row.best_cv_loss_std == pytest.approx(np.std(fold_losses, ddof=1), rel=1e-5)
        assert row.standard_error == pytest.approx(
            np.std(fold_losses, ddof=1) / math.sqrt(3), rel=1e-5
        )
        assert row.median_cv_loss == pytest.approx(
            sorted(t.value for t in trials)[0]
        )  # of 2: the lower
        assert row.generalisation_gap == pytest.approx(val_curve[-1] - train_curve[-1], rel=1e-5)
        # 90 rows in 3 folds: 60 training rows per fold
        assert row.updates_per_epoch == (math.ceil(60 / 7) if size == "7" else 1)
        per_trial_seconds = [
            np.median([m.value for m in client.get_metric_history(run_id_of(t), "epoch_seconds")])
            for t in trials
        ]
        assert row.seconds_per_epoch == pytest.approx(np.median(per_trial_seconds), rel=1e-6)
        assert row.samples_per_second == pytest.approx(180 / row.seconds_per_epoch, rel=1e-6)
        by_hand = [next(e for e, v in enumerate(c, 1) if v <= min(c) * 1.01) for c in
                   ([m.value for m in client.get_metric_history(run_id_of(t), "val_loss")] for t in trials)]  # fmt: skip
        assert row.epochs_to_converge == pytest.approx(np.median(by_hand))
        assert row.memory_kind == "estimate" and row.peak_memory_bytes > 0
        assert record_of(best).n_train_samples == 180

    parent = [r for r in client.search_runs([client.get_experiment_by_name("report").experiment_id])
              if "mlflow.parentRunId" not in r.data.tags][0]  # fmt: skip
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "batch_size_report.csv", "batch_size_report.json", "best_config.json", "learning_curves.png",
        "cv_score_vs_batch_size.png", "time_and_memory_vs_batch_size.png", "lr_vs_batch_size.png",
        "optimization_history.png", "param_importances.png",
    } <= artifacts  # fmt: skip
    # measured during the sweep on the recommended trial, after epoch 1 and at the end
    recommended, _choice = recommended_trial(study.trials)
    readings = noise_readings(recommended)
    assert [(r.stage, r.epoch) for r in readings] == [("early", 1), ("end", 5)]
    # ... and on each trial that ended as the best of its batch size so far, on no other
    for trial in study.trials:
        size = trial.params["batch_size"]
        earlier = [t.value for t in study.trials if t.number < trial.number and t.params["batch_size"] == size]  # fmt: skip
        assert bool(record_of(trial).gradient_noise) == (
            trial.value <= min(earlier, default=math.inf)
        )
    end = readings[-1]
    if end.measurable:
        low, high = end.interval
        assert 0 < low <= parent.data.metrics["critical_batch_size"] == end.estimate <= high
    else:
        assert "critical_batch_size" not in parent.data.metrics
        assert parent.data.tags["critical_batch_size"].startswith("not measurable")
    choice = choose_batch_size(list(rows.values()))
    assert parent.data.tags["best_batch_size"] == choice.batch_size
    assert parent.data.tags["best_batch_size_rule"] == choice.rule
    assert parent.data.tags["argmin_batch_size"] == str(study.best_trial.params["batch_size"])
