"""A stack trained as sub-stacks in several threads (``workers``) gives one stack's results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.trainers.conftest import MIXED_OPTIMIZERS
from trainers import (
    MLPConfig,
    OptimizerConfig,
    TrainConfig,
    load_dataset,
    make_folds,
    train_stack,
)
from trainers.engine import trial_groups
from trainers.problem import make_problem
from trainers.threads import STEP_MACS_PER_WORKER, auto_workers


def _config(optimizer: OptimizerConfig, batch_size: int | None = 8) -> TrainConfig:
    return TrainConfig(
        batch_size=batch_size, epochs=3, optimizer=optimizer, model=MLPConfig((8,)), seed=2
    )


@pytest.mark.parametrize("workers", [2, 3, 10])
@pytest.mark.parametrize("batch_size", [8, None], ids=["batch8-ragged", "full"])
def test_workers_give_the_one_stack_results_and_reports(data, workers, batch_size) -> None:
    configs = [_config(optimizer, batch_size) for optimizer in MIXED_OPTIMIZERS]
    calls: dict[int, list] = {1: [], workers: []}

    def recorder(count: int):
        def on_epoch(index: int, report) -> bool:
            calls[count].append((index, report.epoch, report.stack_size))
            return not (index == 1 and report.epoch == 2)  # trial 1 stops after epoch 2

        return on_epoch

    one = train_stack(data, configs, on_epoch=recorder(1))
    split = train_stack(data, configs, on_epoch=recorder(workers), workers=workers)
    assert calls[workers] == calls[1]  # same trials, same order, same stack sizes
    for whole, part in zip(one, split):
        assert whole.stopped_at_epoch == part.stopped_at_epoch
        if whole.result is None:
            assert part.result is None
            continue
        assert part.result.stack_size == whole.result.stack_size == len(configs)
        for name in ("train_loss", "val_loss", "val_metric"):
            np.testing.assert_allclose(
                getattr(part.result, name), getattr(whole.result, name), rtol=1e-5, atol=1e-6
            )
        torch.testing.assert_close(part.result.final_params, whole.result.final_params)


def test_on_epoch_end_stops_a_trial_in_any_part(data) -> None:
    configs = [_config(optimizer) for optimizer in MIXED_OPTIMIZERS]
    outcomes = train_stack(data, configs, on_epoch_end=lambda: [len(configs) - 1, 99], workers=2)
    assert outcomes[-1].stopped_at_epoch == 1
    assert all(outcome.result is not None for outcome in outcomes[:-1])


def test_a_diverging_trial_in_one_part_leaves_the_others_alone(data) -> None:
    configs = [_config(OptimizerConfig("sgd", 1e5)), _config(OptimizerConfig("adam", 0.01))]
    exploding, healthy = train_stack(data, configs, workers=2)
    assert exploding.diverged is not None and healthy.result is not None
    (alone,) = train_stack(data, configs[1:])
    np.testing.assert_allclose(healthy.result.val_loss, alone.result.val_loss, rtol=1e-5)


def test_an_error_in_a_worker_propagates(data) -> None:
    configs = [_config(optimizer) for optimizer in MIXED_OPTIMIZERS]

    def fail(index: int, report) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        train_stack(data, configs, on_epoch=fail, workers=2)


def test_groups_keep_the_stack_order_in_near_equal_parts() -> None:
    names = ["sgd", "adam", "sgd", "adam", "rmsprop"]
    configs = [_config(OptimizerConfig(name, 0.01)) for name in names]
    groups = trial_groups(configs, 2)
    assert [i for group in groups for i in group] == [1, 3, 4, 0, 2]  # sorted by kind, stable
    assert [len(group) for group in groups] == [2, 3]
    assert trial_groups(configs, 1) == [[1, 3, 4, 0, 2]]
    assert len(trial_groups(configs[:2], 8)) == 2  # at most one part per trial


def test_auto_workers_rule() -> None:
    assert auto_workers(STEP_MACS_PER_WORKER, 4, ceiling=8) == 1
    assert auto_workers(STEP_MACS_PER_WORKER + 1, 4, ceiling=8) == 2
    assert auto_workers(100 * STEP_MACS_PER_WORKER, 3, ceiling=8) == 3
    assert auto_workers(100 * STEP_MACS_PER_WORKER, 4, ceiling=2) == 2


def test_the_problem_splits_only_big_plain_cpu_stacks() -> None:
    dataset = load_dataset("synthetic", n_samples=53, n_features=4, seed=3)
    folds = make_folds(dataset, n_folds=3, seed=0)
    problem = make_problem(dataset, folds, device=torch.device("cpu"))
    big = TrainConfig(
        batch_size=None, epochs=1, optimizer=OptimizerConfig("adam", 0.01), model=MLPConfig((4096,))
    )
    rows = 4 * problem.n_folds * max(problem.train_sizes) * problem.sample_macs(big)
    expected = auto_workers(rows, 4)
    assert problem.stack_workers([big] * 4) == expected
    assert problem.stack_workers([big]) == 1  # one trial: nothing to split
    dropout = dataclasses.replace(big, model=MLPConfig((4096,), dropout=0.1))
    assert problem.stack_workers([dropout] * 4) == 1
    assert problem.stack_workers([dataclasses.replace(big, capture="compile")] * 4) == 1
    pinned = make_problem(dataset, folds, device=torch.device("cpu"), threads=1)
    assert pinned.stack_workers([big] * 4) == 1
