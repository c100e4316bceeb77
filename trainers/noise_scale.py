"""The gradient noise scale B_simple of McCandlish et al. (2018), "An Empirical Model of
Large-Batch Training", from gradient norms measured at two batch sizes.

With G the full-data gradient and S = tr(Σ) the trace of the per-sample gradient covariance, a
batch of B samples drawn from N (without replacement) has

    E |G_B|² = |G|² + c_B · S,    c_B = (N - B) / (B (N - 1))    (c_B = 1/B when N is infinite
                                                                   or batches are drawn with
                                                                   replacement).

Two batch sizes give two equations for |G|² and S, and B_simple = S / |G|²: the batch size where
the gradient's noise and signal are equal, the paper's prediction of the critical batch size.

Both estimates are differences of noisy means, so either can come out at or below zero when the
draws cannot resolve it. Each estimate carries a bootstrap interval over its batches (the draws
resampled with replacement), so a reader can tell a measured value from sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trainers.fold_data import FoldData
from trainers.manual_backward import loss_and_grad
from trainers.memory import bytes_per_row
from trainers.stacked_mlp import MLPConfig, StackedMLP

BOOTSTRAP_RESAMPLES = 1000
INTERVAL = (2.5, 97.5)  # percentiles: a 95% interval
MAX_STEP_BYTES = 256 * 2**20  # one measuring step's activations, at most


@dataclass(frozen=True)
class NoiseScale:
    b_simple: float  # S / |G|²; inf when |G|² is not above zero (it may be negative when S is)
    gradient_sq_norm: float  # |G|²
    trace_covariance: float  # S = tr(Σ)
    small_batch: int
    big_batch: int
    draws: int  # gradients averaged per batch size
    # 95% bootstrap intervals over the draws; the ends may be <= 0 when the estimate is noise
    gradient_sq_interval: tuple[float, float] = (math.nan, math.nan)
    trace_interval: tuple[float, float] = (math.nan, math.nan)
    b_simple_interval: tuple[float, float] = (math.nan, math.nan)  # inf ends when unbounded


def estimate_noise_scale(
    batch_gradient: Callable[[int], Tensor],
    *,
    small: int,
    big: int,
    draws: int,
    population: int | None = None,
    seed: int = 0,
) -> NoiseScale:
    """B_simple from ``draws`` mean gradients at batch sizes ``small`` and ``big``.

    Args:
        batch_gradient: returns the mean loss gradient over a fresh random batch of the given size.
        population: the number of samples batches are drawn from without replacement, or None
            for fresh samples every time.
        seed: of the bootstrap's resampling.

    Example:
        >>> scale = estimate_noise_scale(grad_fn, small=8, big=256, draws=64)
        >>> scale.b_simple
    """
    _check_batches(small, big)

    def sq_norms(batch: int) -> np.ndarray:
        return np.array([float(batch_gradient(batch).pow(2).sum()) for _ in range(draws)])

    return noise_scale_from_norms(
        sq_norms(small), sq_norms(big), small=small, big=big, population=population, seed=seed
    )


def noise_scale_from_norms(
    small_sq: np.ndarray,
    big_sq: np.ndarray,
    *,
    small: int,
    big: int,
    population: int | None = None,
    seed: int = 0,
) -> NoiseScale:
    """B_simple and its bootstrap intervals from the squared norms of ``draws`` batch gradients
    at each batch size (``small_sq`` and ``big_sq``, one value per draw)."""
    _check_batches(small, big)
    c_small, c_big = _coefficient(small, population), _coefficient(big, population)

    def estimates(small_mean: np.ndarray, big_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        trace = (small_mean - big_mean) / (c_small - c_big)
        return small_mean - c_small * trace, trace

    gradient_sq, trace = (float(v) for v in estimates(small_sq.mean(), big_sq.mean()))
    rng = np.random.default_rng(seed)
    picks = (BOOTSTRAP_RESAMPLES, len(small_sq))
    boot_gradient_sq, boot_trace = estimates(
        small_sq[rng.integers(len(small_sq), size=picks)].mean(axis=1),
        big_sq[rng.integers(len(big_sq), size=picks)].mean(axis=1),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_ratio = np.where(boot_gradient_sq > 0, boot_trace / boot_gradient_sq, np.inf)
    b_simple = trace / gradient_sq if gradient_sq > 0 else math.inf
    return NoiseScale(
        b_simple,
        gradient_sq,
        trace,
        small,
        big,
        len(small_sq),
        gradient_sq_interval=_interval(boot_gradient_sq),
        trace_interval=_interval(boot_trace),
        b_simple_interval=_interval(boot_ratio),
    )


def fold_noise_scales(
    data: FoldData,
    model_config: MLPConfig,
    params: Tensor,
    *,
    fold: int = 0,
    small: int = 8,
    big: int = 256,
    draws: int = 64,
    seed: int = 0,
) -> list[NoiseScale]:
    """B_simple of one fold's model at each row of ``params`` ``(n_models, n_params)``, over that
    fold's training data.

    All draws of all rows run as one stack, one step per batch size, and read back once: cheap
    enough to measure during a sweep on the weights it already has. Batches are drawn with
    replacement (c_B = 1/B), so any batch size fits any fold.

    Example:
        >>> early, end = fold_noise_scales(data, config.model, torch.stack([first, last]))
    """
    model = StackedMLP(data.n_features, data.n_outputs, model_config)
    device = data.device
    n_models = params.shape[0]
    params = params.detach().to(device=device, dtype=torch.float32)
    # a (model, draw) pair per row of a step: its weights and gradient, and its batch's activations
    row_bytes = 3 * model.n_params * 4

    def sq_norms(picks: Tensor) -> Tensor:
        """(n_models, draws): the squared norm of each draw's mean gradient."""
        batch = picks.shape[1]
        picks = picks.repeat(n_models, 1)  # every row sees the same batches
        per_step = max(1, MAX_STEP_BYTES // (batch * bytes_per_row(model) + row_bytes))
        norms = []
        for start in range(0, n_models * draws, per_step):
            part = slice(start, min(start + per_step, n_models * draws))
            chosen = picks[part]
            weight = torch.full(chosen.shape, 1 / batch, device=device)
            which = torch.arange(part.start, part.stop, device=device) // draws
            _, grad = loss_and_grad(
                model,
                params[which],
                data.inputs[chosen],
                data.targets[chosen],
                weight,
                classification=data.task == "classification",
            )
            norms.append(grad.pow(2).sum(dim=1))
        return torch.cat(norms).reshape(n_models, draws)

    rows = data.train_rows[fold, : data.train_sizes[fold]]
    return scales_of_draws(
        rows, sq_norms, n_models=n_models, small=small, big=big, draws=draws, seed=seed
    )


def scales_of_draws(
    rows: Tensor,
    squared_norms: Callable[[Tensor], Tensor],
    *,
    n_models: int,
    small: int,
    big: int,
    draws: int,
    seed: int,
) -> list[NoiseScale]:
    """B_simple of ``n_models`` weight rows from ``draws`` batches of ``small`` and then of
    ``big`` samples (at most half of ``rows``), drawn from ``rows`` with replacement on a
    generator seeded ``seed``; ``squared_norms(picks)`` turns the picked rows ``(draws, batch)``
    into the squared norms of each model's mean gradient on each draw, ``(n_models, draws)``.
    One host sync."""
    big = min(big, max(small + 1, len(rows) // 2))
    _check_batches(small, big)
    generator = torch.Generator(device=rows.device).manual_seed(seed)

    def norms(batch: int) -> Tensor:
        shape = (draws, batch)
        return squared_norms(
            rows[torch.randint(len(rows), shape, generator=generator, device=rows.device)]
        )

    both = torch.stack([norms(small), norms(big)]).double().cpu().numpy()
    return [
        noise_scale_from_norms(both[0, row], both[1, row], small=small, big=big, seed=seed)
        for row in range(n_models)
    ]


def fold_noise_scale(
    data: FoldData, model_config: MLPConfig, params: Tensor, **options: int
) -> NoiseScale:
    """B_simple of one fold's model at ``params`` (one row), over that fold's training data;
    ``options`` (fold, small, big, draws, seed) as for :func:`fold_noise_scales`."""
    (scale,) = fold_noise_scales(data, model_config, params.reshape(1, -1), **options)
    return scale


def _check_batches(small: int, big: int) -> None:
    if not 1 <= small < big:
        raise ValueError(f"need 1 <= small < big, but got small={small}, big={big}.")


def _coefficient(batch: int, population: int | None) -> float:
    if population is None:
        return 1 / batch
    return (population - batch) / (batch * (population - 1))


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The central 95% of ``values``, rounded outward to whole samples (inf ends kept)."""
    ordered = np.sort(values)
    last = len(ordered) - 1
    low = ordered[math.floor(INTERVAL[0] / 100 * last)]
    high = ordered[math.ceil(INTERVAL[1] / 100 * last)]
    return float(low), float(high)
