"""training.precision and training.capture from the YAML or the flags to the engine, and what
they do to a study's identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from torch._dynamo.utils import counters

from search_spaces import load_space
from sweep.cli import main
from sweep.study.resume import load_spec, space_fingerprint
from tests.conftest import local_tracking_uri, tiny_space


def _with_training(spec, **changes):
    return dataclasses.replace(spec, training=dataclasses.replace(spec.training, **changes))


def test_capture_never_changes_the_fingerprint_and_bf16_does() -> None:
    spec = load_space("quick")
    assert space_fingerprint(_with_training(spec, capture="compile")) == space_fingerprint(spec)
    assert space_fingerprint(_with_training(spec, precision="bf16")) != space_fingerprint(spec)


def test_studies_made_before_the_keys_existed_still_resume() -> None:
    """The fingerprint of an fp32 space with the built-in MLP and the usual loss is the one
    computed before precision, capture, factories, loss, metric and preprocess were keys, so a
    study created then is not refused as 'a different space'."""
    spec = load_space("quick")
    before = dataclasses.asdict(spec)
    for key in ("name", "path", "budget"):
        before.pop(key)
    for key in ("device", "precision", "capture"):
        before["training"].pop(key)
    for section in ("dataset", "model"):  # keys of a user's own data and model, added later
        before[section].pop("factory")
        before[section].pop("kwargs")
    for key in ("loss", "metric", "preprocess"):
        before.pop(key)
    before["sampler"].pop("seed")
    text = json.dumps(before, sort_keys=True, default=str)
    assert space_fingerprint(spec) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_compile_without_a_cxx_compiler_exits_2_and_creates_nothing(
    workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(workdir))  # no g++, c++ or clang++ here
    code = main(["run", "--space", "quick", "--capture", "compile", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--capture" in err and "C++ compiler" in err and "capture off" in err
    assert not (workdir / "mlruns").exists()


@pytest.mark.slow
def test_sweep_trains_with_compiled_bf16_steps(workdir: Path) -> None:
    space = tiny_space(workdir, trials=2, epochs=2)
    counters.clear()
    assert main(["run", "--space", str(space), "--capture", "compile", "--precision", "bf16"]) == 0
    assert counters["stats"]["unique_graphs"] >= 1  # the engine really compiled its steps
    storage = "sqlite:///mlruns/optuna.db"
    stored = load_spec(storage, "tiny")  # workers joining the study train the same way
    assert (stored.training.precision, stored.training.capture) == ("bf16", "compile")
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=10)
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.data.params["precision"] == "bf16"


def test_a_model_factory_a_loss_or_preprocessing_changes_the_fingerprint() -> None:
    spec = load_space("quick")
    changed = [
        dataclasses.replace(spec, model=dataclasses.replace(spec.model, factory="m.py:f")),
        dataclasses.replace(spec, loss="cross_entropy"),
        dataclasses.replace(
            spec, preprocess=dataclasses.replace(spec.preprocess, standardize="features")
        ),
    ]
    prints = {space_fingerprint(s) for s in changed}
    assert len(prints) == 3 and space_fingerprint(spec) not in prints
