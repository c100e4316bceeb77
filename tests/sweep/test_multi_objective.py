"""objectives: [cv_loss, epoch_seconds] makes a multi-objective study with a Pareto front."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep import load_best_config
from sweep.commands.run import RunOptions, run_sweep
from sweep.study.trial_record import record_of
from tests.conftest import local_tracking_uri, write_space

pytestmark = pytest.mark.slow

SPACE = """
name: pareto
dataset: {source: synthetic, n_samples: 80, n_features: 3, seed: 0}
model: {hidden: [8]}
cv: {folds: 3, seed: 0}
training: {epochs: 3, device: cpu}
search:
  batch_size: [2, 16, full]
  lr: {low: 0.001, high: 0.05}
  optimizer: [sgd, adam]
sampler: {name: tpe, seed: 0}
pruner: none
objectives: [cv_loss, epoch_seconds]
budget: {trials: 8, group_size: 4}
"""


def test_pareto_front_of_cv_loss_and_time(workdir: Path, capsys) -> None:
    run_sweep(RunOptions(space=str(write_space(workdir, "pareto", SPACE))))
    study = optuna.load_study(study_name="pareto", storage="sqlite:///mlruns/optuna.db")
    assert len(study.directions) == 2
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete
    for trial in complete:
        assert trial.values[0] == pytest.approx(record_of(trial).cv_val_loss)
        assert trial.values[1] == pytest.approx(record_of(trial).epoch_seconds)
    front = {t.number for t in study.best_trials}
    for trial in complete:  # no completed trial dominates one on the front
        for number in front:
            other = study.trials[number]
            assert not (trial.values[0] < other.values[0] and trial.values[1] < other.values[1])
    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("pareto")
    parent = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ][0]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.json", "pareto_front.png", "best_config.json"} <= artifacts
    assert set(parent.data.tags["pareto_batch_sizes"].split(",")) == {
        str(study.trials[n].params["batch_size"]) for n in front
    }
    assert "Pareto front" in capsys.readouterr().out
    assert load_best_config("pareto").provenance.study == "pareto"
