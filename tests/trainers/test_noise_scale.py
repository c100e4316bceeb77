"""The noise-scale estimator recovers B_simple where it is known in closed form, its bootstrap
intervals hold the true values, and a stack of rows measures as each row alone.

Linear regression y = w*·x + ε with x ~ N(0, I_d), ε ~ N(0, σ²), loss (w·x - y)², at w = w* + r:
the per-sample gradient is 2 (r·x - ε) x, so G = 2r, |G|² = 4|r|², and
tr Σ = 4((d + 1)|r|² + σ² d), hence B_simple = ((d + 1)|r|² + σ² d) / |r|².
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from trainers import (
    MLPConfig,
    OptimizerConfig,
    TrainConfig,
    load_dataset,
    make_folds,
    prepare_folds,
    train_folds,
)
from trainers.noise_scale import estimate_noise_scale, fold_noise_scale, fold_noise_scales


@pytest.mark.parametrize(("sigma", "r_norm"), [(1.0, 0.5), (0.3, 1.0), (2.0, 0.2)])
def test_recovers_b_simple_of_linear_regression(sigma: float, r_norm: float) -> None:
    d = 5
    generator = torch.Generator().manual_seed(0)
    r = torch.randn(d, generator=generator, dtype=torch.float64)
    r = r / r.norm() * r_norm

    def batch_gradient(batch: int) -> torch.Tensor:
        x = torch.randn(batch, d, generator=generator, dtype=torch.float64)
        noise = sigma * torch.randn(batch, generator=generator, dtype=torch.float64)
        residual = x @ r - noise
        return (2 * residual.unsqueeze(1) * x).mean(dim=0)

    scale = estimate_noise_scale(batch_gradient, small=4, big=64, draws=4000)
    expected = ((d + 1) * r_norm**2 + sigma**2 * d) / r_norm**2
    assert scale.gradient_sq_norm == pytest.approx(4 * r_norm**2, rel=0.15)
    assert scale.trace_covariance == pytest.approx(
        4 * ((d + 1) * r_norm**2 + sigma**2 * d), rel=0.1
    )
    assert scale.b_simple == pytest.approx(expected, rel=0.2)


def test_no_signal_gives_a_huge_or_infinite_noise_scale() -> None:
    generator = torch.Generator().manual_seed(1)

    def pure_noise(batch: int) -> torch.Tensor:  # G = 0: all noise, no signal
        return torch.randn(batch, 3, generator=generator, dtype=torch.float64).mean(dim=0)

    scale = estimate_noise_scale(pure_noise, small=2, big=32, draws=2000)
    assert scale.b_simple > 100 or math.isinf(scale.b_simple)


def test_fold_noise_scale_runs_on_a_fold_model() -> None:
    dataset = load_dataset("diabetes")
    data = prepare_folds(dataset, make_folds(dataset, n_folds=3), device=torch.device("cpu"))
    from trainers.stacked_mlp import StackedMLP

    config = MLPConfig((16,))
    params = StackedMLP(data.n_features, 1, config).init_flat(
        1, seed=0, device=torch.device("cpu")
    )[0]
    scale = fold_noise_scale(data, config, params, small=4, big=64, draws=32)
    assert scale.gradient_sq_norm > 0 and scale.trace_covariance > 0
    assert 0 < scale.b_simple < 10_000


def test_intervals_hold_the_closed_form_values() -> None:
    d, sigma, r_norm = 5, 1.0, 0.5
    generator = torch.Generator().manual_seed(2)
    r = torch.randn(d, generator=generator, dtype=torch.float64)
    r = r / r.norm() * r_norm

    def batch_gradient(batch: int) -> torch.Tensor:
        x = torch.randn(batch, d, generator=generator, dtype=torch.float64)
        residual = x @ r - sigma * torch.randn(batch, generator=generator, dtype=torch.float64)
        return (2 * residual.unsqueeze(1) * x).mean(dim=0)

    scale = estimate_noise_scale(batch_gradient, small=4, big=64, draws=2000)
    trace = 4 * ((d + 1) * r_norm**2 + sigma**2 * d)
    low, high = scale.trace_interval
    assert 0 < low < trace < high
    low, high = scale.gradient_sq_interval
    assert 0 < low < 4 * r_norm**2 < high
    low, high = scale.b_simple_interval
    assert 0 < low < trace / (4 * r_norm**2) < high


def test_pure_noise_has_a_gradient_interval_that_reaches_zero() -> None:
    """G = 0: |G|^2 is zero, and with few draws its estimate is noise around zero."""
    generator = torch.Generator().manual_seed(3)

    def pure_noise(batch: int) -> torch.Tensor:
        return torch.randn(batch, 3, generator=generator, dtype=torch.float64).mean(dim=0)

    scale = estimate_noise_scale(pure_noise, small=2, big=32, draws=64)
    low, high = scale.gradient_sq_interval
    assert low <= 0 < high
    assert scale.trace_interval[0] > 0  # the noise itself is measured


def _diabetes_folds():
    dataset = load_dataset("diabetes")
    return prepare_folds(dataset, make_folds(dataset, n_folds=3), device=torch.device("cpu"))


def test_stacked_rows_measure_as_each_row_alone() -> None:
    from trainers.stacked_mlp import StackedMLP

    data, config = _diabetes_folds(), MLPConfig((8,))
    rows = StackedMLP(data.n_features, 1, config).init_flat(3, seed=1, device=torch.device("cpu"))
    together = fold_noise_scales(data, config, rows, small=4, big=32, draws=16, seed=5)
    for row, scale in zip(rows, together):
        alone = fold_noise_scale(data, config, row, small=4, big=32, draws=16, seed=5)
        assert scale.gradient_sq_norm == pytest.approx(alone.gradient_sq_norm, rel=1e-4)
        assert scale.trace_covariance == pytest.approx(alone.trace_covariance, rel=1e-4)
        assert scale.b_simple_interval == pytest.approx(alone.b_simple_interval, rel=1e-4)


def test_the_engine_keeps_the_weights_of_the_first_epoch() -> None:
    data = _diabetes_folds()

    def config(epochs: int) -> TrainConfig:
        return TrainConfig(
            batch_size=32, epochs=epochs, optimizer=OptimizerConfig("adam", 1e-2), seed=4
        )

    two = train_folds(data, config(2))
    one = train_folds(data, config(1))
    assert one.early_params is None  # the first epoch is the end
    torch.testing.assert_close(two.early_params, one.final_params[0])  # fold 0's
    assert not torch.equal(two.early_params, two.final_params[0])


def test_each_trial_of_a_stack_keeps_its_own_first_epoch() -> None:
    from trainers import train_stack

    data = _diabetes_folds()
    configs = [
        TrainConfig(batch_size=32, epochs=2, optimizer=OptimizerConfig(name, lr), seed=4)
        for name, lr in (("sgd", 0.05), ("adam", 1e-2), ("sgd", 0.01))
    ]
    outcomes = train_stack(data, configs)
    for config, outcome in zip(configs, outcomes):
        alone = train_folds(data, dataclasses.replace(config, epochs=1))
        torch.testing.assert_close(outcome.result.early_params, alone.final_params[0])
