"""The stacked engine gives each fold the curves it would get if trained alone.

The reference trains one ordinary ``nn.Sequential`` per fold with ``torch.optim``, from the same
initial weights and the same per-epoch permutations. Fold sizes are unequal on purpose (53 rows in
3 folds), so the masking of partial batches and of folds that run out early is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers import (
    MLPConfig,
    OptimizerConfig,
    StackedMLP,
    TrainConfig,
    epoch_orders,
    load_dataset,
    make_folds,
    prepare_folds,
    train_folds,
)

CPU = torch.device("cpu")
EPOCHS = 3


@pytest.fixture(scope="module")
def regression_data():
    dataset = load_dataset("synthetic", n_samples=53, n_features=4, noise=0.1, seed=3)
    return prepare_folds(dataset, make_folds(dataset, n_folds=3, seed=0), device=CPU)


@pytest.fixture(scope="module")
def classification_data():
    dataset = load_dataset("iris")
    return prepare_folds(dataset, make_folds(dataset, n_folds=4, seed=0), device=CPU)


def _train_alone(data, config: TrainConfig):
    """Each fold trained on its own: torch.optim, nn.Sequential, plain Python batching.
    Returns the (epochs, folds) train loss, validation loss and accuracy or R²."""
    stacked = StackedMLP(data.n_features, data.n_outputs, config.model)
    initial = stacked.init_flat(data.n_folds, seed=config.seed, device=CPU)
    modules = [stacked.to_module(initial[k]) for k in range(data.n_folds)]
    optimizers = [
        config.optimizer.torch_class()(m.parameters(), **config.optimizer.torch_kwargs())
        for m in modules
    ]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, config.lr_scale) for o in optimizers]
    generator = torch.Generator().manual_seed(config.seed)
    classification = data.task == "classification"
    val_curves, train_curves, metric_curves = [], [], []
    for _ in range(config.epochs):
        order = epoch_orders(generator, data.train_sizes, device=CPU)
        epoch_val, epoch_train, epoch_metric = [], [], []
        for k, (module, optimizer) in enumerate(zip(modules, optimizers)):
            size = data.train_sizes[k]
            rows = data.train_rows[k, order[k, :size]]
            batch_size = size if config.batch_size is None else config.batch_size
            batch_losses = []
            for start in range(0, size, batch_size):
                batch = rows[start : start + batch_size]
                outputs = module(data.inputs[batch])
                if classification:
                    loss = torch.nn.functional.cross_entropy(outputs, data.targets[batch])
                else:
                    loss = torch.nn.functional.mse_loss(outputs.squeeze(-1), data.targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                batch_losses.append(loss.item())
            epoch_train.append(np.mean(batch_losses))
            with torch.no_grad():
                n_val = data.val_sizes[k]
                outputs = module(data.val_inputs[k, :n_val])
                targets = data.val_targets[k, :n_val]
                if classification:
                    val = torch.nn.functional.cross_entropy(outputs, targets)
                    metric = (outputs.argmax(-1) == targets).float().mean()
                else:
                    val = torch.nn.functional.mse_loss(outputs.squeeze(-1), targets)
                    metric = 1 - val * n_val / ((targets - targets.mean()) ** 2).sum()
            epoch_val.append(val.item())
            epoch_metric.append(metric.item())
        for scheduler in schedulers:
            scheduler.step()
        val_curves.append(epoch_val)
        train_curves.append(epoch_train)
        metric_curves.append(epoch_metric)
    return np.array(train_curves), np.array(val_curves), np.array(metric_curves)


OPTIMIZERS = [
    OptimizerConfig("sgd", 0.05),
    OptimizerConfig("momentum", 0.005, weight_decay=1e-3),
    OptimizerConfig("adam", 0.01),
    OptimizerConfig("adamw", 0.01),
    OptimizerConfig("rmsprop", 0.003),
]


@pytest.mark.parametrize("batch_size", [1, 8, None], ids=["batch1", "batch8-ragged", "full"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o.name)
def test_stacked_folds_match_folds_trained_alone(regression_data, optimizer, batch_size) -> None:
    config = TrainConfig(
        batch_size=batch_size, epochs=EPOCHS, optimizer=optimizer, model=MLPConfig((8,)), seed=5
    )
    result = train_folds(regression_data, config)
    train_expected, val_expected, metric_expected = _train_alone(regression_data, config)
    np.testing.assert_allclose(result.val_loss, val_expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.train_loss, train_expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.val_metric, metric_expected, rtol=1e-4, atol=1e-4)  # R²


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_schedules_match_lambda_lr(regression_data, schedule: str) -> None:
    config = TrainConfig(
        batch_size=16,
        epochs=4,
        optimizer=OptimizerConfig("adam", 0.02),
        schedule=schedule,
        step_size=2,
        gamma=0.5,
    )
    result = train_folds(regression_data, config)
    _, val_expected, _ = _train_alone(regression_data, config)
    np.testing.assert_allclose(result.val_loss, val_expected, rtol=1e-5, atol=1e-5)


def test_classification_matches_folds_trained_alone(classification_data) -> None:
    config = TrainConfig(
        batch_size=16, epochs=EPOCHS, optimizer=OptimizerConfig("adam", 0.01), seed=1
    )
    result = train_folds(classification_data, config)
    train_expected, val_expected, metric_expected = _train_alone(classification_data, config)
    np.testing.assert_allclose(result.val_loss, val_expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.train_loss, train_expected, rtol=1e-5, atol=1e-5)
    assert result.metric_name == "accuracy"
    # The accuracy of every fold and epoch is the one each model reaches alone.
    np.testing.assert_allclose(result.val_metric, metric_expected, atol=1e-6)
