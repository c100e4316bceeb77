"""lr_scaling: a base LR is sampled and scaled to each batch size; the export carries the rule."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from sweep import load_best_config
from sweep.commands.run import RunOptions, run_sweep
from sweep.lr_scaling import resolve_rule, scaled_lr
from sweep.study.trial_record import record_of, run_id_of
from tests.conftest import local_tracking_uri, write_space


@pytest.mark.parametrize(
    ("rule", "optimizer", "expected"),
    [
        ("linear", "adam", 0.4),
        ("sqrt", "sgd", 0.1 * math.sqrt(4)),
        ("none", "sgd", 0.1),
        ("auto", "sgd", 0.4),
        ("auto", "momentum", 0.4),
        ("auto", "adam", 0.2),
        ("auto", "rmsprop", 0.2),
    ],
)
def test_scaling_rules(rule: str, optimizer: str, expected: float) -> None:
    assert scaled_lr(
        0.1, rule=rule, optimizer=optimizer, batch_size=128, reference=32
    ) == pytest.approx(expected)


def test_auto_resolves_by_optimizer_family() -> None:
    assert [resolve_rule("auto", name) for name in ("sgd", "adamw")] == ["linear", "sqrt"]


SPACE = """
name: scaled
dataset: {source: synthetic, n_samples: 60, n_features: 3, seed: 0}
model: {hidden: [4]}
cv: {folds: 3, seed: 0}
training: {epochs: 2, device: cpu}
search:
  batch_size: [4, 8, full]
  lr: [0.001, 0.002]
  optimizer: [sgd, adam]
  lr_scaling: {rule: auto, reference_batch_size: 4}
sampler: {name: grid, seed: 0}
pruner: none
budget: {trials: 12}
"""


@pytest.mark.slow
def test_trials_train_at_the_scaled_lr_and_the_export_carries_the_rule(workdir: Path) -> None:
    run_sweep(RunOptions(space=str(write_space(workdir, "scaled", SPACE))))
    study = optuna.load_study(study_name="scaled", storage="sqlite:///mlruns/optuna.db")
    client = MlflowClient(local_tracking_uri())
    for trial in study.trials:
        batch = 40 if trial.params["batch_size"] == "full" else trial.params["batch_size"]
        factor = batch / 4 if trial.params["optimizer"] == "sgd" else math.sqrt(batch / 4)
        expected = trial.params["lr"] * factor
        assert record_of(trial).effective_lr == pytest.approx(expected)
        run = client.get_run(run_id_of(trial))
        assert float(run.data.params["effective_lr"]) == pytest.approx(expected)
        assert run.data.metrics["lr"] == pytest.approx(expected)  # what the engine trained with
    best = load_best_config("scaled")
    base = best.lr_scaling["base_lr"]
    assert best.lr == pytest.approx(best.lr_for(best.batch_size))
    assert best.lr_for(8) == pytest.approx(
        scaled_lr(
            base, rule=best.lr_scaling["rule"], optimizer=best.optimizer, batch_size=8, reference=4
        )
    )
    assert best.lr_for("full") == pytest.approx(best.lr_for(40))
