"""A stack's training step compiled as one graph: ``torch.compile``, and on CUDA its CUDA graphs.

On small models a step is a few dozen tiny kernels, and dispatching them (Python and the
dispatcher on the CPU, kernel launches on a GPU) costs more than their arithmetic. Compiling the
whole step (forward, hand-written backward, and every optimizer block's update) fuses the
elementwise work into a few kernels; on CUDA, ``mode="reduce-overhead"`` also replays the step as
a CUDA graph, one launch for all of it.

Compiling costs seconds for each new shape (batch size, stack size), so it pays on long runs and
not on short ones: it is off unless a config asks for it (``TrainConfig.capture = "compile"``).

On CUDA the compiled function is pure: it returns the new parameters and optimizer state, which
are then copied into the stack's own tensors (CUDA graphs reuse their output memory, and are not
used for functions that write to their inputs). On the CPU, where there are no graphs to keep and
those copies would cost memory bandwidth, it updates the tensors in place. Only full, unchunked
batches take this path; the last, shorter batch of an epoch and chunked steps run eagerly, with
the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from trainers.manual_backward import loss_and_grad
from trainers.stacked_mlp import MLPConfig, StackedMLP
from trainers.stacked_optim import StackedOptimizer, UpdateKind, update_rows
from trainers.train_config import PRECISIONS

COMPUTE_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
# Each stack size and batch size is a new shape to compile for; past this many, torch falls back to
# eager for the new ones. A sweep meets a few dozen shapes at most.
RECOMPILE_LIMIT = 64

_StepKey = tuple[int, int, MLPConfig, tuple[UpdateKind, ...], bool, str, str, bool]
_compiled_steps: dict[_StepKey, Callable] = {}


def compute_dtype(precision: str) -> torch.dtype | None:
    """The dtype the matmuls run in for ``precision`` (None: the parameters' own, float32)."""
    if precision not in COMPUTE_DTYPES:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}.")
    return COMPUTE_DTYPES[precision]


class CompiledStep:
    """One compiled training step for a stack's model, optimizer kinds, task and precision.

    Compiled functions are cached per such key for the whole process, so later stacks of the
    same shape reuse them.
    """

    def __init__(
        self,
        model: StackedMLP,
        optimizers: Sequence[StackedOptimizer],
        *,
        classification: bool,
        precision: str,
        device: torch.device,
        pure: bool | None = None,
    ) -> None:
        """``pure``: None picks the pure function on CUDA and the in-place one elsewhere."""
        self.kinds = tuple(optimizer.kind for optimizer in optimizers)
        self.device = device
        self.pure = device.type == "cuda" if pure is None else pure
        key: _StepKey = (
            model.n_inputs,
            model.n_outputs,
            model.config,
            self.kinds,
            classification,
            precision,
            device.type,
            self.pure,
        )
        if key not in _compiled_steps:
            _compiled_steps[key] = _compile(key)
        self._step = _compiled_steps[key]

    def __call__(
        self,
        flat: Tensor,
        optimizers: Sequence[StackedOptimizer],
        inputs: Tensor,
        targets: Tensor,
        weight_scale: Tensor,
        active: Tensor,
        dropout_draws: list[Tensor] | None,
    ) -> Tensor:
        """Update ``flat`` and the optimizers' state in place; returns each row's batch loss.

        ``active`` is ``(n_models, 1)`` bool: rows where it is False are left as they were.
        """
        blocks = [(*optimizer.hyperparameters(), optimizer.state) for optimizer in optimizers]
        if not self.pure:
            return self._step(flat, blocks, inputs, targets, weight_scale, active, dropout_draws)
        if self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the last replay's outputs are consumed
        loss, new_flat, new_states = self._step(
            flat, blocks, inputs, targets, weight_scale, active, dropout_draws
        )
        with torch.no_grad():
            flat.copy_(new_flat)
            for optimizer, state in zip(optimizers, new_states):
                for name, value in state.items():
                    optimizer.state[name].copy_(value)
        return loss.clone()


def _compile(key: _StepKey) -> Callable:
    n_inputs, n_outputs, config, kinds, classification, precision, device_type, pure = key
    model = StackedMLP(n_inputs, n_outputs, config)
    dtype = compute_dtype(precision)

    def step(
        flat: Tensor,
        blocks: list[tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]],
        inputs: Tensor,
        targets: Tensor,
        weight_scale: Tensor,
        active: Tensor,
        dropout_draws: list[Tensor] | None,
    ) -> tuple[Tensor, Tensor, list[dict[str, Tensor]]]:
        loss, grad = loss_and_grad(
            model,
            flat,
            inputs,
            targets,
            weight_scale,
            classification=classification,
            dropout_draws=dropout_draws,
            compute_dtype=dtype,
        )
        new_flat = flat.clone()
        new_states: list[dict[str, Tensor]] = []
        start = 0
        for kind, (lr, weight_decay, momentum, state) in zip(kinds, blocks):
            stop = start + lr.shape[0]
            block_state = {name: value.clone() for name, value in state.items()}
            update_rows(
                kind,
                new_flat[start:stop],
                grad[start:stop],
                lr,
                weight_decay,
                momentum,
                block_state,
            )
            block_active = active[start:stop]
            new_states.append(
                {
                    name: torch.where(block_active, value, state[name])
                    for name, value in block_state.items()
                }
            )
            start = stop
        return loss, torch.where(active, new_flat, flat), new_states

    def step_in_place(
        flat: Tensor, blocks: list[tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]], *batch: Any
    ) -> Tensor:
        """``step``, written back into ``flat`` and the blocks' state."""
        loss, new_flat, new_states = step(flat, blocks, *batch)
        flat.copy_(new_flat)
        for (*_hyperparameters, state), new_state in zip(blocks, new_states):
            for name, value in new_state.items():
                state[name].copy_(value)
        return loss

    torch._dynamo.config.recompile_limit = max(
        torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
    )
    if not pure:
        return torch.compile(step_in_place)  # the copies fuse into the update kernels
    return torch.compile(step, mode="reduce-overhead" if device_type == "cuda" else None)
