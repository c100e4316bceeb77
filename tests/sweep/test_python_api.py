"""run_sweep() from Python, as in a notebook: the model and data are functions in memory, the
space a dict or a file; the same checks as `sweep run`, and a result holding the study, the
recommended config and the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from sweep import run_sweep
from sweep.errors import UsageError
from trainers.user_code import UserCodeError, load_callable

SPACE = {
    "name": "notebook",
    "dataset": {"source": "iris", "task": "classification"},  # replaced by data=
    "cv": {"folds": 3, "seed": 0},
    "training": {"epochs": 2, "device": "cpu"},
    "search": {"batch_size": [16, "full"], "lr": [0.01, 0.05], "optimizer": ["adam"]},
    "sampler": {"name": "grid", "seed": 0},
    "pruner": "none",
    "budget": {"trials": 4},
}


# Defined as in a notebook: their module is __main__, so no other process can import them.
NOTEBOOK = """
import numpy as np
from torch import nn

def blobs(n=60):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 5)).astype(np.float32) + y[:, None]
    return X, y

def tiny_net(input_shape, n_outputs, width=8):
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.Tanh(), nn.Linear(width, n_outputs))
"""
cell: dict = {"__name__": "__main__"}
exec(NOTEBOOK, cell)  # noqa: S102 - a notebook cell
blobs, tiny_net = cell["blobs"], cell["tiny_net"]


@pytest.mark.slow
def test_a_notebook_sweeps_its_own_functions_and_gets_the_best_config(workdir: Path) -> None:
    result = run_sweep(SPACE, model=tiny_net, data=blobs, model_kwargs={"width": 6}, trials=4)
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 4
    assert result.outcome.counted_trials == 4 and result.report.rows
    best = result.best
    assert best.model == {"factory": "python:tiny_net", "kwargs": {"width": 6}}
    net = best.build_model()  # the same process: the function is still known
    assert net[0].out_features == 6 and net[-1].out_features == 2
    assert best.provenance.study == "notebook"
    # resuming with the same functions runs nothing more
    again = run_sweep(SPACE, model=tiny_net, data=blobs, model_kwargs={"width": 6}, trials=4)
    assert again.outcome.trials_run == 0


def test_bad_settings_raise_before_anything_is_created(workdir: Path) -> None:
    with pytest.raises(UsageError, match="unknown setting"):
        run_sweep(SPACE, trails=3)
    with pytest.raises(UsageError, match="budget.trials"):
        run_sweep(SPACE, trials=0)
    with pytest.raises(UsageError, match="model.factory"):
        run_sweep(SPACE, model=lambda input_shape, n_outputs: "not a module", data=blobs)
    with pytest.raises(UsageError, match="workers"):
        run_sweep(SPACE, model=tiny_net, data=blobs, workers=2)
    assert not (workdir / "mlruns").exists()


def test_an_in_process_function_is_named_in_another_process_with_how_to_fix() -> None:
    with pytest.raises(UserCodeError, match="exists only in the process"):
        load_callable("python:never_registered")
