"""The gradient noise scale B_simple of McCandlish et al. (2018), "An Empirical Model of
Large-Batch Training", from gradient norms measured at two batch sizes.

With G the full-data gradient and S = tr(Σ) the trace of the per-sample gradient covariance, a
batch of B samples drawn from N (without replacement) has

    E |G_B|² = |G|² + c_B · S,    c_B = (N - B) / (B (N - 1))    (c_B = 1/B when N is infinite).

Two batch sizes give two equations for |G|² and S, and B_simple = S / |G|²: the batch size where
the gradient's noise and signal are equal, the paper's prediction of the critical batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from trainers.fold_data import FoldData
from trainers.manual_backward import loss_and_grad
from trainers.stacked_mlp import MLPConfig, StackedMLP


@dataclass(frozen=True)
class NoiseScale:
    b_simple: float  # S / |G|²; inf when |G|² is not measurably above zero
    gradient_sq_norm: float  # |G|²
    trace_covariance: float  # S = tr(Σ)
    small_batch: int
    big_batch: int
    draws: int  # gradients averaged per batch size


def estimate_noise_scale(
    batch_gradient: Callable[[int], Tensor],
    *,
    small: int,
    big: int,
    draws: int,
    population: int | None = None,
) -> NoiseScale:
    """B_simple from ``draws`` mean gradients at batch sizes ``small`` and ``big``.

    Args:
        batch_gradient: returns the mean loss gradient over a fresh random batch of the given size.
        population: the number of samples batches are drawn from without replacement, or None
            for fresh samples every time.

    Example:
        >>> scale = estimate_noise_scale(grad_fn, small=8, big=256, draws=64)
        >>> scale.b_simple
    """
    if not 1 <= small < big:
        raise ValueError(f"need 1 <= small < big, but got small={small}, big={big}.")

    def mean_sq_norm(batch: int) -> float:
        return sum(float(batch_gradient(batch).pow(2).sum()) for _ in range(draws)) / draws

    def coefficient(batch: int) -> float:
        if population is None:
            return 1 / batch
        return (population - batch) / (batch * (population - 1))

    small_sq, big_sq = mean_sq_norm(small), mean_sq_norm(big)
    trace = (small_sq - big_sq) / (coefficient(small) - coefficient(big))
    gradient_sq = small_sq - coefficient(small) * trace
    b_simple = trace / gradient_sq if gradient_sq > 0 else math.inf
    return NoiseScale(b_simple, gradient_sq, trace, small, big, draws)


def fold_noise_scale(
    data: FoldData,
    model_config: MLPConfig,
    params: Tensor,
    *,
    fold: int = 0,
    small: int = 8,
    big: int = 256,
    draws: int = 64,
    seed: int = 0,
) -> NoiseScale:
    """B_simple of one fold's model at ``params`` (one row), over that fold's training data."""
    size = data.train_sizes[fold]
    big = min(big, max(small + 1, size // 2))
    model = StackedMLP(data.n_features, data.n_outputs, model_config)
    rows = data.train_rows[fold, :size]
    generator = torch.Generator(device=data.device).manual_seed(seed)
    flat = params.reshape(1, -1)

    def batch_gradient(batch: int) -> Tensor:
        picked = rows[
            torch.randperm(size, generator=generator, device=data.device)[:batch]
        ].unsqueeze(0)
        weight = torch.full((1, batch), 1 / batch, device=data.device)
        _, grad = loss_and_grad(
            model,
            flat,
            data.inputs[picked],
            data.targets[picked],
            weight,
            classification=data.task == "classification",
        )
        return grad

    return estimate_noise_scale(batch_gradient, small=small, big=big, draws=draws, population=size)
