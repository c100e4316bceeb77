"""The noise-scale estimator recovers B_simple where it is known in closed form.

Linear regression y = w*·x + ε with x ~ N(0, I_d), ε ~ N(0, σ²), loss (w·x - y)², at w = w* + r:
the per-sample gradient is 2 (r·x - ε) x, so G = 2r, |G|² = 4|r|², and
tr Σ = 4((d + 1)|r|² + σ² d), hence B_simple = ((d + 1)|r|² + σ² d) / |r|².
"""

from __future__ import annotations

import math

import pytest
import torch

from trainers import MLPConfig, load_dataset, make_folds, prepare_folds
from trainers.noise_scale import estimate_noise_scale, fold_noise_scale


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
