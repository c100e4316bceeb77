"""A batch too large for the device is computed in chunks: the same training, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers import (
    MLPConfig,
    OptimizerConfig,
    TrainConfig,
    load_dataset,
    make_folds,
    prepare_folds,
    train_stack,
)
from trainers.memory import bytes_per_row, free_bytes, max_step_rows
from trainers.stacked_mlp import StackedMLP

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    dataset = load_dataset("synthetic", n_samples=103, n_features=5, seed=1)
    return prepare_folds(dataset, make_folds(dataset, n_folds=3, seed=0), device=CPU)


@pytest.mark.parametrize("batch_size", [None, 32], ids=["full", "batch32"])
@pytest.mark.parametrize("max_rows", [7, 60, 250])
def test_chunked_steps_equal_whole_steps(data, batch_size, max_rows) -> None:
    configs = [
        TrainConfig(
            batch_size=batch_size,
            epochs=3,
            optimizer=OptimizerConfig(name, 0.01),
            model=MLPConfig((6,)),
        )
        for name in ("adam", "sgd")
    ]
    whole = train_stack(data, configs, max_rows=10**9)
    chunked = train_stack(data, configs, max_rows=max_rows)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(b.result.val_loss, a.result.val_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.result.train_loss, a.result.train_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.result.val_metric, a.result.val_metric, rtol=1e-5, atol=1e-5)
    assert whole[0].result.chunks_per_step == 1
    expected_chunk = max(
        1, min(chunked[0].result.batch_size, max_rows // (2 * 3))
    )  # 2 trials x 3 folds
    assert chunked[0].result.chunks_per_step == -(-chunked[0].result.batch_size // expected_chunk)


def test_the_row_budget_follows_free_memory() -> None:
    model = StackedMLP(10, 1, MLPConfig((50,)))
    assert bytes_per_row(model) > (10 + 50 + 1) * 4
    assert free_bytes(CPU) > 0
    rows = max_step_rows(model, CPU)
    assert 1 <= rows <= free_bytes(CPU) // bytes_per_row(model)
