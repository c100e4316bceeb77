"""A refit trains the chosen config on every row and keeps the standardisation with the model:
the saved state dict holds tensors only and rebuilds the same predictor."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.digits_cnn_data import load_digits_images
from search_spaces.digits_cnn_model import make_cnn
from trainers.data import _make_dataset, load_dataset
from trainers.problem import ModelChoice
from trainers.refit import FittedModel, refit_model
from trainers.stacked_mlp import MLPConfig, build_mlp
from trainers.stacked_optim import OptimizerConfig
from trainers.train_config import TrainConfig

CPU = torch.device("cpu")


def dataset_from_arrays(X, y, *, name: str, task: str):
    n_features = int(np.prod(X.shape[1:]))
    labels = tuple(range(int(y.max()) + 1)) if task == "classification" else None
    return _make_dataset(name, X, y, tuple(f"x{i}" for i in range(n_features)), task, labels)


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    return 1.0 - float(((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


@pytest.fixture(scope="module")
def regression():
    dataset = load_dataset("synthetic", n_samples=300, n_features=5, noise=0.1, seed=3)
    # A target far from zero and wide: a model that forgot to undo the scaling is far off.
    y = (dataset.y * 40.0 + 500.0).astype(np.float32)
    return dataset_from_arrays(dataset.X * 7.0 + 3.0, y, name="shifted", task="regression")


def test_the_refit_predicts_in_the_targets_units_from_raw_inputs(regression) -> None:
    config = TrainConfig(32, 40, OptimizerConfig("adam", 1e-2), seed=1)
    fitted = refit_model(regression, ModelChoice(mlp=MLPConfig(hidden=(16,))), config, device=CPU)
    with torch.no_grad():
        pred = fitted.model(torch.as_tensor(regression.X)).reshape(-1).numpy()
    assert _r2(pred, regression.y) > 0.8  # 0.87 measured; unscaled outputs give far below 0
    assert fitted.train_loss.shape == (40,)
    assert fitted.train_loss[-1] < 0.5 * fitted.train_loss[0]
    # The statistics of every row travel with the model.
    assert torch.allclose(fitted.model.input_mean, torch.as_tensor(regression.X.mean(0)), atol=1e-3)
    assert float(fitted.model.target_mean) == pytest.approx(float(regression.y.mean()), rel=1e-4)


def test_the_saved_state_dict_loads_with_weights_only_into_a_new_module(regression) -> None:
    config = TrainConfig(64, 3, OptimizerConfig("sgd", 1e-2), seed=0)
    mlp = MLPConfig(hidden=(8,))
    fitted = refit_model(regression, ModelChoice(mlp=mlp), config, device=CPU).model
    buffer = io.BytesIO()
    torch.save(fitted.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = build_mlp(regression.n_features, 1, mlp)  # other random weights
    inputs = torch.as_tensor(regression.X[:20])
    with torch.no_grad():
        untrained = fresh(inputs)
        loaded = FittedModel.from_state_dict(fresh, state).eval()
        assert torch.equal(loaded(inputs), fitted(inputs))
        assert not torch.equal(untrained, fitted.model(inputs))


def test_a_state_dict_that_is_not_a_refit_or_does_not_fit_is_refused() -> None:
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="lacks"):
        FittedModel.from_state_dict(model, model.state_dict())
    other = FittedModel(
        nn.Linear(4, 1),
        input_mean=torch.zeros(4),
        input_std=torch.ones(4),
        target_mean=torch.zeros(()),
        target_std=torch.ones(()),
    )
    with pytest.raises(ValueError, match="do not fit"):
        FittedModel.from_state_dict(model, other.state_dict())


def test_a_cnn_on_images_refits_without_scaling_and_learns() -> None:
    X, y = load_digits_images()
    images = dataset_from_arrays(X[:600], y[:600], name="digits", task="classification")
    config = TrainConfig(32, 4, OptimizerConfig("adam", 3e-3), seed=0)
    fitted = refit_model(images, ModelChoice(factory=make_cnn), config, device=CPU)
    assert fitted.engine == "stacked"
    assert torch.equal(fitted.model.input_mean, torch.zeros(1, 8, 8))  # N-d: not standardised
    with torch.no_grad():
        accuracy = (fitted.model(torch.as_tensor(X[:600])).argmax(1).numpy() == y[:600]).mean()
    assert accuracy > 0.8
