"""A NaN or infinite loss stops training with TrainingDiverged, naming the epoch."""

from __future__ import annotations

import pytest
import torch

from trainers import (
    OptimizerConfig,
    TrainConfig,
    TrainingDiverged,
    load_dataset,
    make_folds,
    prepare_folds,
    train_folds,
)
from trainers.engine import _StackRun, train_stack


def test_exploding_learning_rate_raises_training_diverged() -> None:
    dataset = load_dataset("diabetes")
    data = prepare_folds(dataset, make_folds(dataset, n_folds=3), device=torch.device("cpu"))
    seen = []
    config = TrainConfig(batch_size=8, epochs=5, optimizer=OptimizerConfig("sgd", 1e4))
    with pytest.raises(TrainingDiverged) as raised:
        train_folds(data, config, on_epoch=seen.append)
    assert raised.value.epoch == len(seen) + 1
    assert "NaN or infinite" in str(raised.value)


def test_a_diverging_row_stops_updating_at_once_and_its_stack_mate_trains_as_alone(data) -> None:
    exploding = TrainConfig(batch_size=8, epochs=2, optimizer=OptimizerConfig("sgd", 1e4))
    healthy = TrainConfig(batch_size=8, epochs=2, optimizer=OptimizerConfig("adam", 1e-2))
    run = _StackRun(data, [exploding, healthy], max_rows=None)
    run.train_epoch(0)
    rows = run.flat.shape[0] // 2  # the stack sorts by optimizer name: adam rows come first
    assert not run.alive[rows:].any() and run.alive[:rows].all()
    assert torch.isfinite(run.flat).all()  # frozen before a NaN or inf reached the weights

    outcomes = train_stack(data, [exploding, healthy])
    assert outcomes[0].diverged is not None and outcomes[0].diverged.epoch == 1
    alone = train_stack(data, [healthy])[0].result
    assert outcomes[1].result is not None
    torch.testing.assert_close(outcomes[1].result.final_params, alone.final_params)
