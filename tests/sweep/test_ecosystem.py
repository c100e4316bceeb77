"""The sweep fits the tools around it: MLflow's run context, dataset and description, Optuna's
own attributes, the environment variables others use, ``python -m sweep`` and logging."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from sweep import load_best_config
from sweep.cli import build_parser, main, set_log_level
from sweep.commands.terminal import say
from sweep.commands.ui_url import ui_url
from sweep.errors import UsageError
from sweep.locations import resolve_storage
from sweep.provenance.dataset_facts import DatasetFacts
from sweep.provenance.run_context import run_context_tags
from sweep.tracking.mlflow_context import dataset_input
from tests.conftest import local_tracking_uri, tiny_space
from trainers.data import Dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sweep_logger():
    """The ``sweep`` logger's level as a test leaves it: INFO, as a fresh process has it."""
    yield logging.getLogger("sweep")
    set_log_level(0)


@pytest.mark.parametrize(
    ("flag", "sweep_env", "optuna_env", "expected"),
    [
        ("postgresql://f/x", "postgresql://s/x", "postgresql://o/x", "postgresql://f/x"),
        (None, "postgresql://s/x", "postgresql://o/x", "postgresql://s/x"),
        (None, None, "postgresql://o/x", "postgresql://o/x"),
        (None, None, None, "sqlite:///mlruns/optuna.db"),
    ],
)
def test_optuna_storage_comes_after_the_flag_and_sweep_storage(
    monkeypatch: pytest.MonkeyPatch, flag, sweep_env, optuna_env, expected
) -> None:
    for name, value in (("SWEEP_STORAGE", sweep_env), ("OPTUNA_STORAGE", optuna_env)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert resolve_storage(flag) == expected


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == "sweep 0.1.0"


def test_verbosity_flags_go_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["-q", "ui-url"]).quiet == 1
    after = parser.parse_args(["-v", "ui-url", "-q", "-q"])
    assert (after.verbosity, after.quiet) == (1, 2)
    assert parser.parse_args(["ui-url"]).verbosity == 0


def test_quiet_keeps_warnings_and_drops_messages(
    capsys: pytest.CaptureFixture[str], sweep_logger: logging.Logger
) -> None:
    set_log_level(-1)
    say("a progress message")
    say("a warning", logging.WARNING)
    assert capsys.readouterr().out == "a warning\n"
    set_log_level(1)
    assert sweep_logger.getEffectiveLevel() == logging.DEBUG


def test_the_ui_address_of_a_server_hides_its_password(workdir: Path) -> None:
    shown = ui_url("http://alice:hunter2@host:5000/", local_tracking_uri())
    assert shown.startswith("http://alice:***@host:5000  (no study yet")


def test_run_context_names_the_user_the_source_and_the_commit(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    inside = run_context_tags(cwd=ROOT)
    assert inside["mlflow.source.git.commit"] == head
    assert inside["mlflow.source.type"] == "LOCAL" and inside["mlflow.user"]
    assert "mlflow.source.git.commit" not in run_context_tags(cwd=tmp_path)  # not a checkout


@pytest.mark.parametrize(
    ("name", "shown", "source"),
    [
        ("iris", "iris", {"uri": "iris"}),
        ("/data/prices.csv", "prices.csv", {"uri": "/data/prices.csv"}),
        ("python:blobs", "python:blobs", {"tags": {"mlflow.source.name": "python:blobs"}}),
    ],
)
def test_the_data_is_an_mlflow_dataset_with_our_fingerprint(name: str, shown: str, source) -> None:
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = Dataset(name, X, np.zeros(6, np.float32), "regression", None, ("a", "b"), None, "f00d")
    recorded = dataset_input(DatasetFacts.of(data))
    assert (recorded.dataset.name, recorded.dataset.digest) == (shown, "f00d")
    assert json.loads(recorded.dataset.source) == source
    assert json.loads(recorded.dataset.profile)["features_shape"] == [6, 2]
    assert [(t.key, t.value) for t in recorded.tags] == [("mlflow.data.context", "training")]


def test_the_dataset_input_from_facts_is_the_one_from_the_arrays() -> None:
    """The tracking process gets shapes and dtypes, not the data: MLflow must record the same."""
    import mlflow.data

    X = np.random.default_rng(0).normal(size=(50, 3, 4)).astype(np.float32)
    y = np.arange(50) % 3
    data = Dataset("digits", X, y, "classification", None, None, None, "beef")
    facts = DatasetFacts.of(data)
    recorded = dataset_input(facts).dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = mlflow.data.from_numpy(X, source="digits", targets=y, name="digits", digest="beef")
    entity = real._to_mlflow_entity()
    assert (recorded.schema, recorded.profile, recorded.source) == (
        entity.schema,
        entity.profile,
        entity.source,
    )
    features, targets = facts.stand_ins()
    assert features.shape == X.shape and targets.dtype == y.dtype
    assert features.strides == (0, 0, 0)  # one value, not a copy of the data


@pytest.mark.slow
def test_python_m_sweep_prints_the_version_and_imports_leave_optuna_verbosity_alone() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "sweep", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert (version.returncode, version.stdout.strip()) == (0, "sweep 0.1.0")
    code = (
        "import optuna; optuna.logging.set_verbosity(optuna.logging.DEBUG);"
        "import sweep, sweep.cli, sweep.commands.run, sweep.commands.in_process,"
        " sweep.commands.launcher, sweep.commands.report;"
        "print(optuna.logging.get_verbosity())"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == str(optuna.logging.DEBUG), imported.stderr


@pytest.mark.slow
def test_the_study_run_carries_context_dataset_description_and_space(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tiny_space(workdir, name="eco", trials=3, epochs=2)
    assert main(["run", "--space", str(space)]) == 0
    study = optuna.load_study(study_name="eco", storage="sqlite:///mlruns/optuna.db")
    attrs = study.user_attrs
    best = load_best_config("eco")
    # Optuna's own tools see our choice, which need not be their lowest-loss "best trial"
    assert attrs["recommended_trial"] == best.provenance.trial_number
    assert attrs["best_batch_size"] == str(best.batch_size)
    assert attrs["best_batch_size_rule"] == best.provenance.selection_rule

    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("eco")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 3
    fingerprint = best.provenance.data_fingerprint
    for run in (parent, *trials):
        tags = run.data.tags
        assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.source.name"]
        (dataset,) = run.inputs.dataset_inputs
        assert (dataset.dataset.name, dataset.dataset.digest) == ("iris", fingerprint)
        assert json.loads(dataset.dataset.source) == {"uri": "iris"}
        assert json.loads(dataset.dataset.profile)["features_shape"] == [150, 4]
    note = parent.data.tags["mlflow.note.content"]
    assert f"batch size **{best.batch_size}**" in note
    assert "one-standard-error" in note or "lowest CV loss (one batch" in note
    assert "| batch | done |" in note and "| full |" in note
    assert "Critical batch size:" in note
    assert f'"lr": {best.lr}' in note
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "space")]
    assert artifacts == ["space/eco.yaml"]

    # the description follows the report
    client.set_tag(parent.info.run_id, "mlflow.note.content", "stale")
    assert main(["report", "--study", "eco"]) == 0
    assert client.get_run(parent.info.run_id).data.tags["mlflow.note.content"] == note


@pytest.mark.slow
def test_a_script_elsewhere_loads_the_best_config_by_study_name_from_mlflow(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    space = tiny_space(workdir, name="far", trials=2, epochs=2)
    assert main(["run", "--space", str(space)]) == 0
    expected = load_best_config("far")
    elsewhere = tmp_path_factory.mktemp("another_project")
    script = elsewhere / "use_it.py"
    script.write_text(
        "from sweep import load_best_config\n"
        "best = load_best_config('far')\n"
        "print(best.batch_size, best.lr, best.provenance.trial_number)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEP_STORAGE", "OPTUNA_STORAGE")}
    env["MLFLOW_TRACKING_URI"] = local_tracking_uri()
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    batch, lr, trial = done.stdout.split()
    assert (batch, float(lr), int(trial)) == (
        str(expected.batch_size),
        expected.lr,
        expected.provenance.trial_number,
    )
    assert not (elsewhere / "mlruns").exists()  # it looked, and created nothing


def test_a_study_found_nowhere_names_both_places(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    with pytest.raises(UsageError) as error:
        load_best_config("ghost", tracking_uri="sqlite:///nowhere/mlflow.db")
    message = str(error.value)
    assert "sqlite:///mlruns/optuna.db (no such file)" in message
    assert f"MLflow at sqlite:///{workdir}/nowhere/mlflow.db (no such file)" in message
