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


def test_exploding_learning_rate_raises_training_diverged() -> None:
    dataset = load_dataset("diabetes")
    data = prepare_folds(dataset, make_folds(dataset, n_folds=3), device=torch.device("cpu"))
    seen = []
    config = TrainConfig(batch_size=8, epochs=5, optimizer=OptimizerConfig("sgd", 1e4))
    with pytest.raises(TrainingDiverged) as raised:
        train_folds(data, config, on_epoch=seen.append)
    assert raised.value.epoch == len(seen) + 1
    assert "NaN or infinite" in str(raised.value)
