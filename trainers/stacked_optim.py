"""Optimizers written functionally on stacked parameters.

All the models of a stack live in one tensor ``flat`` of shape ``(n_models, n_params)``. Each
optimizer below reproduces its ``torch.optim`` namesake (default arguments, single-tensor code
path) on every row of that tensor at once. Hyperparameters are tensors of shape
``(n_models, 1)``, so the rows may use different learning rates, weight decays or momenta.

A row can sit a step out (its fold has no samples left in this epoch): :meth:`StackedOptimizer.step`
takes an ``active`` mask and leaves inactive rows and their state exactly as they were.

The optimizers' names and defaults live in :mod:`trainers.vocabulary`; this module holds only
their updates (:func:`initial_state` and :func:`update_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from trainers.vocabulary import OPTIMIZER_NAMES, OPTIMIZERS, OptimizerKind

# The fixed hyperparameters follow torch.optim's defaults.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_ALPHA = 0.99
RMSPROP_EPS = 1e-8


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimizer and its hyperparameters, as plain data."""

    name: str  # one of OPTIMIZER_NAMES
    lr: float
    weight_decay: float | None = None  # None: the optimizer's default (0, AdamW: 1e-2)
    momentum: float | None = None  # None: the default (momentum: 0.9, rmsprop: 0); others ignore it

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer name={self.name!r} is not one of {OPTIMIZER_NAMES}.")
        if not self.lr > 0:
            raise ValueError(f"optimizer lr must be > 0, but got lr={self.lr}.")

    @property
    def optimizer_kind(self) -> OptimizerKind:
        """This optimizer's entry in :data:`trainers.vocabulary.OPTIMIZERS`."""
        return OPTIMIZERS[self.name]

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return self.optimizer_kind.default_weight_decay

    @property
    def resolved_momentum(self) -> float:
        default = self.optimizer_kind.default_momentum
        if default is None:
            return 0.0
        return default if self.momentum is None else self.momentum

    def torch_kwargs(self) -> dict[str, float]:
        """Keyword arguments that build the same optimizer with ``torch.optim``."""
        return {
            "lr": self.lr,
            **self.optimizer_kind.torch_kwargs(
                weight_decay=self.weight_decay, momentum=self.momentum
            ),
        }

    def torch_class(self) -> type[torch.optim.Optimizer]:
        """The ``torch.optim`` class this config stands for."""
        return getattr(torch.optim, self.optimizer_kind.torch_class_name)


class StackedOptimizer:
    """Update every row of a stacked parameter tensor as ``torch.optim`` would.

    Args:
        flat: the stacked parameters, shape ``(n_models, n_params)``; updated in place.
        configs: one :class:`OptimizerConfig` per row; all must share the same ``name``.

    Example:
        >>> flat = torch.zeros(2, 3)
        >>> opt = StackedOptimizer(flat, [OptimizerConfig("sgd", 0.1)] * 2)
        >>> opt.step(torch.ones(2, 3))
        >>> flat[0, 0].item()
        -0.1
    """

    def __init__(self, flat: Tensor, configs: list[OptimizerConfig]) -> None:
        names = {config.name for config in configs}
        if len(names) != 1:
            raise ValueError(f"a stack shares one optimizer kind, but got {sorted(names)}.")
        if len(configs) != flat.shape[0]:
            raise ValueError(f"got {len(configs)} configs for {flat.shape[0]} stacked models.")
        self.name = configs[0].name
        self.flat = flat

        def column(values: list[float]) -> Tensor:
            return torch.tensor(values, dtype=flat.dtype, device=flat.device).unsqueeze(1)

        self.base_lr = column([c.lr for c in configs])
        self.lr = self.base_lr  # base_lr times the schedule's current factor
        self.weight_decay = column([c.resolved_weight_decay for c in configs])
        self.momentum = column([c.resolved_momentum for c in configs])
        self.has_weight_decay = any(c.resolved_weight_decay != 0 for c in configs)
        self.has_momentum = any(c.resolved_momentum != 0 for c in configs)
        self.state = initial_state(self.name, flat, has_momentum=self.has_momentum)

    def keep_rows(self, rows: Tensor, flat: Tensor) -> None:
        """Keep only ``rows`` (indices into this optimizer's rows), now living in ``flat``.

        Used when some models of a stack stop early: the survivors go on, without the others.
        """
        self.flat = flat
        self.base_lr = self.base_lr[rows]
        self.lr = self.lr[rows]
        self.weight_decay = self.weight_decay[rows]
        self.momentum = self.momentum[rows]
        self.state = {key: value[rows] for key, value in self.state.items()}

    def set_lr_scale(self, lr_scale: float) -> None:
        """Multiply the base learning rates by the schedule's factor, from the next step on."""
        self.lr = self.base_lr if lr_scale == 1.0 else self.base_lr * lr_scale

    @torch.no_grad()
    def step(
        self, grad: Tensor, *, lr_scale: float | None = None, active: Tensor | None = None
    ) -> None:
        """Apply one update.

        Args:
            grad: gradient of each row's own loss, same shape as ``flat``.
            lr_scale: if given, the LR schedule's factor (see :meth:`set_lr_scale`).
            active: optional bool tensor ``(n_models, 1)``; rows where it is False keep their
                parameters and optimizer state unchanged.
        """
        if lr_scale is not None:
            self.set_lr_scale(lr_scale)
        if active is None:
            self._update(grad, self.lr)
            return
        before = [self.flat.clone(), *(value.clone() for value in self.state.values())]
        self._update(grad, self.lr)
        for tensor, old in zip([self.flat, *self.state.values()], before):
            tensor.copy_(torch.where(active, tensor, old))

    def _update(self, grad: Tensor, lr: Tensor) -> None:
        update_rows(self.kind, self.flat, grad, lr, self.weight_decay, self.momentum, self.state)

    @property
    def kind(self) -> UpdateKind:
        """What decides the update's code path; tensors aside, the whole of the optimizer."""
        return UpdateKind(self.name, self.has_weight_decay, "momentum_buffer" in self.state)

    def hyperparameters(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(lr, weight_decay, momentum)``, one row per model, the LR schedule applied."""
        return self.lr, self.weight_decay, self.momentum


def optimizers_by_kind(
    flat: Tensor, configs: Sequence[OptimizerConfig], n_folds: int
) -> list[StackedOptimizer]:
    """One :class:`StackedOptimizer` per optimizer kind over ``flat``, whose rows hold each
    trial's ``n_folds`` models, the trials grouped by kind in the order of ``configs`` (one
    config per trial), as both engines lay out their stacks."""
    optimizers, start = [], 0
    for name in dict.fromkeys(config.name for config in configs):
        members = [config for config in configs if config.name == name]
        rows = len(members) * n_folds
        per_row = [config for config in members for _ in range(n_folds)]
        optimizers.append(StackedOptimizer(flat[start : start + rows], per_row))
        start += rows
    return optimizers


class UpdateKind(NamedTuple):
    name: str
    has_weight_decay: bool
    has_momentum_buffer: bool  # momentum, or rmsprop with momentum


def initial_state(name: str, flat: Tensor, *, has_momentum: bool) -> dict[str, Tensor]:
    """The optimizer state :func:`update_rows` expects, zeroed, for every row of ``flat``."""
    state: dict[str, Tensor] = {}
    if name == "momentum" or (name == "rmsprop" and has_momentum):
        state["momentum_buffer"] = torch.zeros_like(flat)
    if name in ("adam", "adamw"):
        state["exp_avg"] = torch.zeros_like(flat)
        state["exp_avg_sq"] = torch.zeros_like(flat)
        state["step"] = torch.zeros(flat.shape[0], 1, dtype=flat.dtype, device=flat.device)
    if name == "rmsprop":
        state["square_avg"] = torch.zeros_like(flat)
    return state


def update_rows(
    kind: UpdateKind,
    flat: Tensor,
    grad: Tensor,
    lr: Tensor,
    weight_decay: Tensor,
    momentum: Tensor,
    state: dict[str, Tensor],
) -> None:
    """One optimizer step on every row of ``flat`` and ``state``, in place.

    A plain function of tensors, so that a compiled training step can run it too
    (:mod:`trainers.step_capture`).
    """
    name = kind.name
    if name in ("sgd", "momentum", "adam", "rmsprop") and kind.has_weight_decay:
        grad = grad.addcmul(flat, weight_decay)
    if name == "sgd":
        flat.sub_(lr * grad)
    elif name == "momentum":
        buffer = state["momentum_buffer"]
        buffer.mul_(momentum).add_(grad)
        flat.sub_(lr * buffer)
    elif name in ("adam", "adamw"):
        _adam(kind, flat, grad, lr, weight_decay, state)
    elif name == "rmsprop":
        square_avg = state["square_avg"]
        square_avg.mul_(RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - RMSPROP_ALPHA)
        avg = square_avg.sqrt().add_(RMSPROP_EPS)
        if kind.has_momentum_buffer:
            buffer = state["momentum_buffer"]
            buffer.mul_(momentum).addcdiv_(grad, avg)
            flat.sub_(lr * buffer)
        else:
            flat.sub_(lr * (grad / avg))
    else:
        raise NotImplementedError(
            f"optimizer {name!r} is in trainers.vocabulary but has no update; add its branch "
            "to trainers.stacked_optim.update_rows."
        )


def _adam(
    kind: UpdateKind,
    flat: Tensor,
    grad: Tensor,
    lr: Tensor,
    weight_decay: Tensor,
    state: dict[str, Tensor],
) -> None:
    beta1, beta2 = ADAM_BETAS
    if kind.name == "adamw" and kind.has_weight_decay:
        flat.mul_(1 - lr * weight_decay)
    state["step"].add_(1)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    # torch computes the bias corrections 1 - beta**step in double precision on the host. On
    # the device in float32, 1 - beta**step cancels catastrophically for small steps, so it is
    # written -expm1(step * log(beta)), which stays within ~1e-7 relative of torch's value.
    step = state["step"]
    negative_step_size = lr / torch.expm1(step * math.log(beta1))
    bias_correction2_sqrt = torch.expm1(step * math.log(beta2)).neg_().sqrt_()
    # torch's formula, step by step in one buffer (no temporaries of the stack's size):
    # update = negative_step_size * (exp_avg / (sqrt(exp_avg_sq) / bias_correction2_sqrt + eps))
    update = exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(ADAM_EPS)
    torch.div(exp_avg, update, out=update)
    flat.add_(update.mul_(negative_step_size))


def masked_step(
    optimizers: list[StackedOptimizer],
    grad: Tensor,
    alive: Tensor,
    active: Tensor | None = None,
) -> None:
    """One update of every optimizer block; rows where ``alive`` (``(n_rows, 1)`` bool) is False
    get a zero gradient and a zero learning rate, so finite parameters stay exactly as they were.

    ``active`` (same shape), when given, marks the rows that take part in this step at all;
    the others keep their parameters and optimizer state (the optimizer's own masked step).
    """
    grad = _zero_dead_rows(grad, alive)
    start = 0
    for optimizer in optimizers:
        stop = start + optimizer.flat.shape[0]
        block_alive = alive[start:stop]
        if active is not None:
            optimizer.step(grad[start:stop], active=active[start:stop] & block_alive)
        else:
            lr, weight_decay, momentum = optimizer.hyperparameters()
            update_rows(
                optimizer.kind,
                optimizer.flat,
                grad[start:stop],
                lr * block_alive,
                weight_decay,
                momentum,
                optimizer.state,
            )
        start = stop


def _zero_dead_rows(grad: Tensor, alive: Tensor) -> Tensor:
    """``grad`` with the rows where ``alive`` is False set to zero. On the CPU, where reading
    ``alive`` costs no device sync, a stack with every row alive skips the masking pass:
    ``torch.where`` with a broadcast row mask took 120 us per step on a 20 x 13k stack, 6x a
    plain copy."""
    if grad.device.type == "cpu" and bool(alive.all()):
        return grad
    return torch.where(alive, grad, 0)


def keep_stack_rows(
    flat: Tensor, optimizers: list[StackedOptimizer], keep: list[int], n_folds: int
) -> tuple[Tensor, Tensor, list[StackedOptimizer]]:
    """The stack of the trials at positions ``keep`` (each ``n_folds`` rows of ``flat``):
    ``(row_index, new_flat, optimizers)``. Each optimizer's block is re-cut, so the surviving
    rows keep their optimizer state; an optimizer left with no row is dropped."""
    row_index = torch.tensor(
        [position * n_folds + fold for position in keep for fold in range(n_folds)],
        device=flat.device,
    )
    new_flat = flat[row_index].clone()
    start_old, start_new, kept = 0, 0, []
    for optimizer in optimizers:
        rows = optimizer.flat.shape[0]
        local = row_index[(row_index >= start_old) & (row_index < start_old + rows)] - start_old
        if len(local):
            optimizer.keep_rows(local, new_flat[start_new : start_new + len(local)])
            kept.append(optimizer)
            start_new += len(local)
        start_old += rows
    return row_index, new_flat, kept
