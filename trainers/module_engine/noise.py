"""The gradient noise scale B_simple of a user's module, as :mod:`trainers.noise_scale` measures
it for the built-in MLP: the squared norms of ``draws`` batch gradients at a small and a big batch
size, on one fold's training data, for several weight rows at once.

Every (weight row, draw) pair is one model of a stack. Through the stacked program the draws play
the folds and the weight rows the positions, so each draw's batch is read once for all the rows;
other modules run through vmap. A module with buffers (BatchNorm's running statistics) or one
vmap cannot run is not measured: :class:`NoiseNotMeasured` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from trainers.losses import Loss
from trainers.module_engine._data import ModuleFoldData
from trainers.module_engine._program import stacked_path
from trainers.module_engine._stack import (
    ModelFactory,
    ModuleStack,
    build_module,
)
from trainers.module_engine._train import _seeded_global_rng
from trainers.noise_scale import MAX_STEP_BYTES, NoiseScale, scales_of_draws


class NoiseNotMeasured(ValueError):
    """The module's noise scale cannot be measured; the message says why, for the record."""


def module_noise_scales(
    data: ModuleFoldData,
    factory: ModelFactory,
    params: Tensor,
    *,
    loss: Loss,
    model_kwargs: Mapping[str, Any] | None = None,
    fold: int = 0,
    small: int = 8,
    big: int = 256,
    draws: int = 64,
    seed: int = 0,
) -> list[NoiseScale]:
    """B_simple of fold ``fold``'s model at each row of ``params`` ``(n_rows, n_params)`` (the
    module engine's flat layout), over that fold's training data. Batches are drawn with
    replacement (c_B = 1/B), the same batches for every row.

    Example:
        >>> early, end = module_noise_scales(data, make_cnn, torch.stack([first, last]),
        ...                                  loss=resolve_loss("cross_entropy"))
    """
    # dropout's masks: the same measurement every time, and the caller's draws untouched
    with _seeded_global_rng(seed, data.device):
        try:
            return _measure(
                data, factory, params, loss, model_kwargs, fold, small, big, draws, seed
            )
        except (NoiseNotMeasured, torch.OutOfMemoryError):
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            # Training ran, so this is the measurement's own failure: the trial keeps its result
            # and its record says why there is no reading.
            raise NoiseNotMeasured(f"not measured: {type(error).__name__}: {error}") from error


def _measure(
    data: ModuleFoldData,
    factory: ModelFactory,
    params: Tensor,
    loss: Loss,
    model_kwargs: Mapping[str, Any] | None,
    fold: int,
    small: int,
    big: int,
    draws: int,
    seed: int,
) -> list[NoiseScale]:
    module = build_module(
        factory, data.sample_shape, data.n_outputs, seed=seed, fold=fold, model_kwargs=model_kwargs
    )
    stack = ModuleStack(module, data.device)
    flat0, state = stack.stack([module])
    if state:
        raise NoiseNotMeasured(
            "not measured for a model with buffers or frozen parameters (such as BatchNorm's "
            "running statistics)"
        )
    rows = data.train_rows[fold, : data.train_sizes[fold]]
    probe_inputs, probe_targets = data.inputs[rows[:2]], data.targets[rows[:2]]
    program, probe = stacked_path(stack, flat0, {}, probe_inputs, probe_targets, loss)
    if not probe.stackable:
        raise NoiseNotMeasured(f"not measured: {probe.reason}")
    params = params.detach().to(device=data.device, dtype=stack.dtype)
    n_rows = params.shape[0]
    per_sample = _activation_bytes(stack.base, probe_inputs[:1])

    def sq_norms(picks: Tensor) -> Tensor:
        """(n_rows, draws): the squared norm of each draw's mean gradient."""
        draws, batch = picks.shape
        per_step = max(1, min(draws, MAX_STEP_BYTES // max(1, n_rows * batch * per_sample)))
        norms = []
        for start in range(0, draws, per_step):
            chosen = picks[start : start + per_step]  # (draws here, batch): the "folds"
            n_draws = chosen.shape[0]
            flat = params.repeat_interleave(n_draws, dim=0)  # row p * n_draws + draw
            targets = data.targets[chosen].repeat(n_rows, *[1] * (data.targets.dim()))
            if program is not None:
                _, grad = program.loss_and_grad(
                    stack.views(flat), data.inputs[chosen], targets, loss
                )
            else:
                inputs = data.inputs[chosen].repeat(n_rows, *[1] * data.inputs.dim())
                _, grad = stack.loss_and_grad(flat, {}, inputs, targets, loss)
            norms.append(grad.pow(2).sum(dim=1).view(n_rows, n_draws))
        return torch.cat(norms, dim=1)

    return scales_of_draws(
        rows, sq_norms, n_models=n_rows, small=small, big=big, draws=draws, seed=seed
    )


def _activation_bytes(module: nn.Module, sample: Tensor) -> int:
    """Bytes one sample's forward and backward hold, estimated from one sample's forward: every
    layer's output, kept and matched by its gradient, plus the input's."""
    total = [sample.numel()]

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            total[0] += output.numel()

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            module(sample)
    finally:
        for handle in handles:
            handle.remove()
    return 2 * total[0] * sample.element_size()
