"""An out-of-memory error prunes the trial with reason "oom", lowers the ceiling, and later
full-batch trials complete with their batch computed in chunks. The sweep never crashes."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import trainers.engine
from sweep.commands.run import RunOptions, run_sweep
from sweep.study.trial_record import record_of
from tests.conftest import write_space

SPACE = """
name: oom
dataset: {source: iris}
model: {hidden: [8]}
cv: {folds: 3, seed: 0}
training: {epochs: 2, device: cpu}
search:
  batch_size: [full]
  lr: [0.001, 0.01, 0.1]
  optimizer: [sgd]
sampler: {name: grid, seed: 0}
pruner: none
budget: {trials: 3, group_size: 1}
"""
DEVICE_ROWS = 150  # the pretend device holds 150 (model, sample) rows per step


@pytest.fixture
def small_device(monkeypatch: pytest.MonkeyPatch) -> None:
    real = trainers.engine.loss_and_grad

    def loss_and_grad(model, flat, inputs, *args, **kwargs):
        if inputs.shape[0] * inputs.shape[1] > DEVICE_ROWS:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(model, flat, inputs, *args, **kwargs)

    monkeypatch.setattr(trainers.engine, "loss_and_grad", loss_and_grad)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_oom_prunes_then_later_trials_fit_by_chunking(
    workdir: Path, small_device, storage: str, request: pytest.FixtureRequest
) -> None:
    url = (
        "sqlite:///mlruns/optuna.db"
        if storage == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    space = write_space(workdir, "oom", SPACE)
    outcome = run_sweep(RunOptions(space=str(space), storage=url))
    study = optuna.load_study(study_name="oom", storage=url)
    first, *later = study.trials
    assert first.state == TrialState.PRUNED
    assert record_of(first).prune_reason.startswith("oom: out of device memory at batch_size=full")
    assert [t.state for t in later] == [TrialState.COMPLETE, TrialState.COMPLETE]
    # 3 folds x 100 rows did not fit; half of that does: two chunks per full-batch step.
    assert [record_of(t).chunks_per_step for t in later] == [2, 2]
    assert outcome.counted_trials == 3
