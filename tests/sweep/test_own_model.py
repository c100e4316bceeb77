"""Your own model, data and loss, from a YAML that names their functions: a sweep end to end,
the engine each trial ran on, --group-size 1 against stacking, the exported config building the
model again, and every kind of bad user code stopped before anything is created."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep import load_best_config
from sweep.cli import main
from sweep.commands.run import RunOptions, run_sweep
from sweep.report.selection import recommended_trial
from sweep.study.trial_record import record_of
from tests.conftest import local_tracking_uri, write_space

DATA = """
import numpy as np

def images(n=90, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
    X[:, 0, y, y] += 2.0  # a learnable signal
    return X, y

def mismatched():
    X, y = images()
    return X, y[:-1]

def with_nan():
    X, y = images()
    X[5, 0, 0, 0] = float("nan")
    return X, y
"""

MODELS = """
import torch
from torch import nn

class TinyCNN(nn.Module):
    def __init__(self, input_shape, n_outputs, channels=4):
        super().__init__()
        c, h, w = input_shape
        self.body = nn.Sequential(nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(channels * h * w, n_outputs)

    def forward(self, x):
        return self.head(self.body(x))

class Branchy(TinyCNN):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: vmap cannot run it
            return self.head(self.body(x))
        return -self.head(self.body(x))

def cnn(input_shape, n_outputs, channels=4):
    return TinyCNN(input_shape, n_outputs, channels)

def branchy(input_shape, n_outputs):
    return Branchy(input_shape, n_outputs)

def raises(input_shape, n_outputs):
    raise RuntimeError("no GPU memory for my model")

def not_a_module(input_shape, n_outputs):
    return "a string"

def wrong_outputs(input_shape, n_outputs):
    return TinyCNN(input_shape, n_outputs + 2)

NOT_CALLABLE = 3
"""

SPACE = """
name: own
dataset: {{factory: data.py:{data}, task: classification}}
model: {{factory: models.py:{model}, kwargs: {kwargs}}}
loss: {loss}
metric: {metric}
cv: {{folds: 3, seed: 0}}
training: {{epochs: 3, device: cpu}}
search:
  batch_size: [8, full]
  lr: [0.01, 0.05]
  optimizer: [adam]
sampler: {{name: grid, seed: 0}}
pruner: none
budget: {{trials: 4, group_size: {group_size}}}
"""


def _space(
    folder: Path,
    *,
    data: str = "images",
    model: str = "cnn",
    kwargs: str = "{channels: 4}",
    loss: str = "cross_entropy",
    metric: str = "accuracy",
    group_size: int = 4,
    name: str = "own",
) -> Path:
    (folder / "data.py").write_text(DATA)
    (folder / "models.py").write_text(MODELS)
    text = SPACE.format(
        data=data, model=model, kwargs=kwargs, loss=loss, metric=metric, group_size=group_size
    )
    return write_space(folder, name, text.replace("name: own", f"name: {name}"))


def _trial_runs(study: str):
    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.slow
def test_own_cnn_sweeps_stacked_and_the_best_config_builds_it_again(workdir: Path) -> None:
    space = _space(workdir)
    run_sweep(RunOptions(space=str(space)))
    study = optuna.load_study(study_name="own", storage="sqlite:///mlruns/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    runs = _trial_runs("own")
    assert len(runs) == 4
    assert {r.data.tags["engine"] for r in runs} == {"stacked"}
    assert all(record_of(t).engine == "stacked" for t in study.trials)
    assert all(record_of(t).stack_size == 2 for t in study.trials)  # 2 LRs per batch size
    assert all(0.0 <= record_of(t).cv_metric <= 1.0 for t in study.trials)

    best = load_best_config("own")
    model = best.build_model()
    assert type(model).__name__ == "TinyCNN" and model.head.out_features == 3
    assert model(torch.zeros(2, 1, 6, 6)).shape == (2, 3)
    optimizer = best.make_optimizer(model.parameters())
    assert type(optimizer).__name__ == "Adam"
    assert (best.loss, best.metric, best.input_shape, best.n_outputs) == (
        "cross_entropy",
        "accuracy",
        [1, 6, 6],
        3,
    )
    assert best.preprocessing == {"standardize": "auto", "standardized_per_fold": False}
    # the gradient noise scale, measured on the user's model as on the built-in MLP
    recommended, _choice = recommended_trial(study.trials)
    readings = record_of(recommended).gradient_noise
    assert [(r["stage"], r["epoch"]) for r in readings] == [("early", 1), ("end", 3)]
    assert all(r["small_batch"] == 8 and r["draws"] == 64 for r in readings)
    assert record_of(recommended).gradient_noise_note == ""


@pytest.mark.slow
def test_group_size_1_gives_the_cv_losses_of_stacked_trials(workdir: Path) -> None:
    losses = {}
    for group_size in (1, 4):
        name = f"own{group_size}"
        run_sweep(RunOptions(space=str(_space(workdir, group_size=group_size, name=name))))
        study = optuna.load_study(study_name=name, storage="sqlite:///mlruns/optuna.db")
        losses[group_size] = {
            (str(t.params["batch_size"]), t.params["lr"]): (t.value, record_of(t).stack_size)
            for t in study.trials
        }
    assert losses[1].keys() == losses[4].keys() and len(losses[1]) == 4
    for key, (alone, stack_size) in losses[1].items():
        stacked, stacked_size = losses[4][key]
        assert (stack_size, stacked_size) == (1, 2)
        assert stacked == pytest.approx(alone, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_a_module_vmap_cannot_run_trains_one_model_at_a_time_and_says_why(
    workdir: Path,
) -> None:
    run_sweep(RunOptions(space=str(_space(workdir, model="branchy", kwargs="{}"))))
    runs = _trial_runs("own")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["engine"] for r in runs} == {"sequential"}
    assert all("vmap" in r.data.tags["engine_reason"] for r in runs)
    study = optuna.load_study(study_name="own", storage="sqlite:///mlruns/optuna.db")
    notes = {record_of(t).gradient_noise_note for t in study.trials} - {""}
    assert notes and all(n.startswith("not measured: torch.func.vmap failed") for n in notes)
    assert not any(record_of(t).gradient_noise for t in study.trials)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"model": "missing_function"}, ["model.factory", "missing_function"]),
        ({"model": "NOT_CALLABLE"}, ["model.factory", "NOT_CALLABLE", "callable"]),
        ({"model": "raises", "kwargs": "{}"}, ["model.factory", "no GPU memory for my model"]),
        ({"model": "not_a_module", "kwargs": "{}"}, ["model.factory", "Module", "str"]),
        ({"model": "wrong_outputs", "kwargs": "{}"}, ["model.factory", "(2, 5)", "(2, 3)"]),
        ({"data": "mismatched"}, ["dataset.factory", "90", "89"]),
        ({"data": "with_nan"}, ["dataset.factory", "NaN"]),
        ({"loss": "hinge"}, ["loss", "hinge", "cross_entropy"]),
        ({"loss": "mse"}, ["loss 'mse' does not fit this classification task", "(3,)"]),
        ({"metric": "r2"}, ["metric 'r2' does not fit this classification task"]),
        ({"metric": "models.py:cnn"}, ["metric", "higher_is_better"]),
    ],
)
def test_bad_user_code_exits_2_and_creates_nothing(
    workdir: Path, capsys, changes: dict[str, str], expected: list[str]
) -> None:
    space = _space(workdir, **changes)
    code = main(["run", "--space", str(space)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(space) in err or "own.yaml" in err
    for text in expected:
        assert text in err, (text, err)
    assert not (workdir / "mlruns").exists()


def test_a_missing_factory_file_is_named_with_where_it_was_looked_for(
    workdir: Path, capsys
) -> None:
    space = _space(workdir)
    space.write_text(space.read_text().replace("models.py:cnn", "nowhere.py:cnn"))
    assert main(["run", "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert "model.factory" in err and str(workdir / "nowhere.py") in err
    assert not (workdir / "mlruns").exists()


GRU_FILE = """
import numpy as np
from torch import nn

def sequences(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 6, 3)).astype(np.float32)
    X[:, :, 0] += y[:, None]
    return X, y

class Recurrent(nn.Module):
    def __init__(self, input_shape, n_outputs, hidden=4):
        super().__init__()
        self.rnn = nn.GRU(input_shape[-1], hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        outputs, _ = self.rnn(x)
        return self.head(outputs[:, -1])

def make_gru(input_shape, n_outputs, hidden=4):
    return Recurrent(input_shape, n_outputs, hidden)
"""

LAYER_NORM_FILE = """
from torch import nn

def make_mlp(input_shape, n_outputs, width=16, dropout=0.2):
    return nn.Sequential(
        nn.Linear(input_shape[0], width), nn.LayerNorm(width), nn.GELU(), nn.Dropout(dropout),
        nn.Linear(width, n_outputs),
    )
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("files", "dataset", "model", "engine"),
    [
        (
            {"gru.py": GRU_FILE},
            "{factory: gru.py:sequences, task: classification}",
            "{factory: gru.py:make_gru, kwargs: {hidden: 4}}",
            "sequential",  # vmap has no batching rule for aten::gru
        ),
        (
            {"layer_norm.py": LAYER_NORM_FILE},
            "{source: iris}",
            "{factory: layer_norm.py:make_mlp, kwargs: {dropout: 0.2}}",
            "stacked",
        ),
    ],
    ids=["gru", "layer-norm-dropout-mlp"],
)
def test_a_recurrent_model_and_a_layer_norm_mlp_sweep_from_their_own_files(
    workdir: Path, files: dict[str, str], dataset: str, model: str, engine: str
) -> None:
    for name, text in files.items():
        (workdir / name).write_text(text)
    space = write_space(
        workdir,
        "mine",
        f"""
dataset: {dataset}
model: {model}
cv: {{folds: 3, seed: 0}}
training: {{epochs: 2, device: cpu}}
search: {{batch_size: [8, full], lr: [0.01], optimizer: [adam, sgd]}}
sampler: {{name: grid, seed: 0}}
pruner: none
budget: {{trials: 4}}
""",
    )
    run_sweep(RunOptions(space=str(space)))
    runs = _trial_runs("mine")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["engine"] for r in runs} == {engine}
    built = load_best_config("mine").build_model()
    assert isinstance(built, torch.nn.Module)
