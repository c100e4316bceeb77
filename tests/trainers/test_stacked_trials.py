"""Trials stacked together get exactly the curves they get when trained one at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tests.trainers.conftest import MIXED_OPTIMIZERS
from trainers import (
    MLPConfig,
    OptimizerConfig,
    TrainConfig,
    stack_key,
    train_folds,
    train_stack,
)

MIXED = MIXED_OPTIMIZERS


def _config(optimizer: OptimizerConfig, batch_size: int | None = 8, epochs: int = 4) -> TrainConfig:
    return TrainConfig(
        batch_size=batch_size, epochs=epochs, optimizer=optimizer, model=MLPConfig((8,)), seed=2
    )


@pytest.mark.parametrize("batch_size", [1, 8, None], ids=["batch1", "batch8-ragged", "full"])
def test_stack_of_mixed_optimizers_equals_each_trial_alone(data, batch_size) -> None:
    configs = [_config(optimizer, batch_size) for optimizer in MIXED]
    outcomes = train_stack(data, configs)
    for config, outcome in zip(configs, outcomes):
        alone = train_folds(data, config)
        np.testing.assert_allclose(outcome.result.val_loss, alone.val_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            outcome.result.train_loss, alone.train_loss, rtol=1e-5, atol=1e-6
        )


def test_a_stopped_trial_leaves_and_the_others_are_unchanged(data) -> None:
    configs = [_config(optimizer) for optimizer in MIXED]
    seen: dict[int, list[int]] = {}

    def stop_some(index: int, report) -> bool:
        seen.setdefault(index, []).append(report.epoch)
        return not (index in (0, 3) and report.epoch == 2)  # stop trials 0 and 3 after epoch 2

    outcomes = train_stack(data, configs, on_epoch=stop_some)
    assert outcomes[0].stopped_at_epoch == 2 and outcomes[0].result is None
    assert seen[0] == [1, 2] and seen[3] == [1, 2] and seen[1] == [1, 2, 3, 4]
    for index in (1, 2, 4, 5):
        alone = train_folds(data, configs[index])
        np.testing.assert_allclose(
            outcomes[index].result.val_loss, alone.val_loss, rtol=1e-5, atol=1e-6
        )


def test_a_diverging_trial_does_not_disturb_its_stack(data) -> None:
    configs = [_config(OptimizerConfig("sgd", 1e5)), _config(OptimizerConfig("adam", 0.01))]
    exploding, healthy = train_stack(data, configs)
    assert exploding.diverged is not None and exploding.result is None
    np.testing.assert_allclose(
        healthy.result.val_loss, train_folds(data, configs[1]).val_loss, rtol=1e-5, atol=1e-6
    )


def test_stack_key_separates_what_cannot_share_batches(data) -> None:
    base = _config(OptimizerConfig("adam", 0.01))
    assert stack_key(base, data) == stack_key(_config(OptimizerConfig("sgd", 0.5)), data)
    assert stack_key(base, data) != stack_key(
        _config(OptimizerConfig("adam", 0.01), batch_size=16), data
    )
    # every size above the largest fold is full-batch
    assert stack_key(_config(base.optimizer, batch_size=None), data) == stack_key(
        _config(base.optimizer, batch_size=10_000), data
    )
    with pytest.raises(ValueError, match="a stack needs one batch size"):
        train_stack(data, [base, _config(base.optimizer, batch_size=16)])
