"""A real sweep against the real SQLite stores: Optuna study, MLflow runs, resume, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.cli import main
from sweep.commands.run import RunOptions, run_sweep
from sweep.report.selection import recommended_trial
from sweep.study.trial_record import record_of
from tests.conftest import local_tracking_uri, tiny_space

pytestmark = pytest.mark.slow
STORAGE = "sqlite:///mlruns/optuna.db"


def _runs(experiment_name: str):
    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, experiment, parents, children


def test_sweep_writes_study_parent_run_and_nested_trial_runs(workdir: Path) -> None:
    space = tiny_space(workdir, trials=3, epochs=4)
    outcome = run_sweep(RunOptions(space=str(space)))
    assert outcome.trials_run == 3
    # The sweep splits its time: the engine's part, and the rest (stores, Optuna, MLflow, report).
    assert 0 < outcome.training_seconds < outcome.seconds

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(study.trials) == 3
    client, experiment, parents, children = _runs("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}

    best, _choice = recommended_trial(study.trials)  # the best trial of the 1-SE batch size
    assert parent.data.params["best_batch_size"] == str(best.params["batch_size"])
    assert parent.data.tags["best_batch_size"] == str(best.params["batch_size"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.json", "learning_curves.png"} <= artifacts

    for child in children:
        trial = study.trials[int(child.data.tags["optuna.trial_number"])]
        assert child.info.status == "FINISHED"
        assert child.data.params["batch_size"] == str(trial.params["batch_size"])
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in history] == [1, 2, 3, 4]
        assert [m.value for m in history] == pytest.approx(record_of(trial).val_loss_curve)
        assert trial.intermediate_values == {}  # pruner "none": no per-epoch report to Optuna
        for fold in range(3):
            assert len(client.get_metric_history(child.info.run_id, f"fold_{fold}/val_loss")) == 4
            assert f"fold_{fold}/score_accuracy" in child.data.metrics
        assert child.data.metrics["cv_val_loss"] == pytest.approx(trial.value)
        assert child.data.metrics["wall_seconds"] > 0


def test_rerun_resumes_and_runs_only_the_remaining_trials(workdir: Path) -> None:
    space = tiny_space(workdir, trials=2, epochs=2)
    first = run_sweep(RunOptions(space=str(space), study="resumed"))
    second = run_sweep(
        RunOptions(space=str(space), study="resumed", overrides={"budget.trials": ("--trials", 5)})
    )
    third = run_sweep(
        RunOptions(space=str(space), study="resumed", overrides={"budget.trials": ("--trials", 5)})
    )
    assert (first.trials_run, second.trials_run, third.trials_run) == (2, 3, 0)
    assert first.parent_run_id == second.parent_run_id == third.parent_run_id
    study = optuna.load_study(study_name="resumed", storage=STORAGE)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    _, _, parents, children = _runs("resumed")
    assert len(parents) == 1 and len(children) == 5


def test_diverging_trials_are_pruned_with_a_reason_not_failed(workdir: Path) -> None:
    space = tiny_space(
        workdir, name="boom", trials=2, epochs=3, lr="{low: 1.0e+6, high: 1.0e+7}", optimizers="sgd"
    )
    assert main(["run", "--space", str(space)]) == 0
    study = optuna.load_study(study_name="boom", storage=STORAGE)
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    for trial in study.trials:
        assert record_of(trial).prune_reason.startswith("diverged:")
    _, _, parents, children = _runs("boom")
    assert {c.info.status for c in children} == {"KILLED"}
    assert all(c.data.tags["prune_reason"].startswith("diverged:") for c in children)
    assert "best_batch_size" not in parents[0].data.tags  # nothing completed, nothing claimed


def test_best_config_round_trips_through_file_study_and_mlflow(workdir: Path, capsys) -> None:
    from sweep import load_best_config

    space = tiny_space(workdir, name="export", trials=3, epochs=2)
    outcome = run_sweep(RunOptions(space=str(space)))
    capsys.readouterr()
    assert main(["best", "--study", "export", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert main(["best", "--study", "export", "-o", "best.yaml", "--format", "yaml"]) == 0

    from_study = load_best_config("export")
    from_yaml = load_best_config(workdir / "best.yaml")
    from_mlflow = load_best_config(f"runs:/{outcome.parent_run_id}")
    assert from_study == from_yaml == from_mlflow
    assert from_study.to_dict()["batch_size"] == printed["batch_size"]

    study = optuna.load_study(study_name="export", storage=STORAGE)
    recommended, choice = recommended_trial(study.trials)
    assert from_study.provenance.trial_number == recommended.number
    assert from_study.provenance.selection_rule == choice.rule
    assert from_study.provenance.argmin_trial_number == study.best_trial.number
    assert from_study.lr == pytest.approx(recommended.params["lr"])
    assert from_study.provenance.n_folds == 3

    import torch

    optimizer = from_study.make_optimizer(torch.nn.Linear(3, 1).parameters())
    assert type(optimizer).__name__ == from_study.torch_optimizer
    assert optimizer.param_groups[0]["lr"] == pytest.approx(from_study.lr)


def test_best_of_unknown_study_exits_2(workdir: Path, capsys) -> None:
    assert main(["best", "--study", "nothing-here"]) == 2
    assert "nothing-here" in capsys.readouterr().err
    assert not (workdir / "mlruns").exists()


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "grid"])
def test_every_sampler_runs_a_study(workdir: Path, sampler: str) -> None:
    space = tiny_space(workdir, name=sampler, trials=3, epochs=1, lr="[0.01, 0.1]")
    text = space.read_text().replace("name: random", f"name: {sampler}")
    space.write_text(text)
    outcome = run_sweep(RunOptions(space=str(space)))
    study = optuna.load_study(study_name=sampler, storage=STORAGE)
    assert outcome.trials_run == 3
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    if sampler == "grid":
        grid = {
            (t.params["batch_size"], t.params["optimizer"], t.params["lr"]) for t in study.trials
        }
        assert len(grid) == 3  # no grid point twice
