"""The stacked run: every (trial, fold) model in one flat tensor, trained through vmap.

Rows are ``position * n_folds + fold``. All rows of a fold see the same batches. A step where the
folds hold different numbers of samples (the end of an epoch of unequal folds) is split into
groups of folds with equal counts, each computed on exactly its real samples: so a module that
couples the samples of a batch (BatchNorm) sees what it would see alone, and a fold whose data
ran out sits the step out, its parameters and optimizer state untouched.

A row whose loss turns non-finite is frozen from that step on (zero gradient, zero learning
rate), so NaN or infinite values do not spread through its optimizer state while the epoch ends;
its trial then diverges and leaves the stack.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import Tensor

from trainers.fold_data import epoch_orders
from trainers.losses import Loss, Metric
from trainers.module_engine._data import ModuleFoldData
from trainers.module_engine._program import StackedProgram
from trainers.module_engine._run import RunBase
from trainers.module_engine._stack import ModuleStack
from trainers.stacked_optim import (
    StackedOptimizer,
    keep_stack_rows,
    masked_step,
    optimizers_by_kind,
)
from trainers.train_config import TrainConfig

# (count, folds): ``count`` samples from each of ``folds`` (None: every fold).
StepGroup = tuple[int, "tuple[int, ...] | None"]


def step_groups(train_sizes: tuple[int, ...], batch_size: int, start: int) -> list[StepGroup]:
    """The folds of the step at position ``start``, grouped by their count of real samples."""
    counts = [max(0, min(batch_size, size - start)) for size in train_sizes]
    if len(set(counts)) == 1:
        return [(counts[0], None)]
    groups: dict[int, list[int]] = {}
    for fold, count in enumerate(counts):
        if count > 0:
            groups.setdefault(count, []).append(fold)
    return [(count, tuple(folds)) for count, folds in groups.items()]


class StackedRun(RunBase):
    """State of one vmapped stack while it trains."""

    engine = "stacked"

    def __init__(
        self,
        data: ModuleFoldData,
        configs: list[TrainConfig],
        *,
        stack: ModuleStack,
        initial: tuple[Tensor, dict[str, Tensor]],
        loss: Loss,
        metric: Metric,
        reason: str,
        max_eval_rows: int,
        program: StackedProgram | None = None,
    ) -> None:
        super().__init__(data, configs, metric, reason)
        self.stack, self.loss, self.max_eval_rows = stack, loss, max_eval_rows
        self.program = program
        # what the program's steps index by sample (each sample's patches when they fit)
        self._program_inputs, self._prepared = (
            (data.inputs, False) if program is None else program.prepared(data.inputs)
        )
        n_live = len(self.live)
        flat, state = initial
        self.flat = flat.repeat(n_live, 1)
        self.state = {name: _repeat_rows(value, n_live) for name, value in state.items()}
        self.optimizers = self._optimizers()
        self.alive = torch.ones(self.flat.shape[0], 1, dtype=torch.bool, device=data.device)
        self._train_loss_sum = torch.zeros(self.flat.shape[0], device=data.device)
        self._started = 0.0
        self._plan = [
            step_groups(data.train_sizes, self.batch_size, step * self.batch_size)
            for step in range(self.n_steps)
        ]

    def _optimizers(self) -> list[StackedOptimizer]:
        live = [self.configs[i].optimizer for i in self.live]
        return optimizers_by_kind(self.flat, live, self.n_folds)

    def train_epoch(self, epoch: int) -> None:
        self._started = time.perf_counter()
        data = self.data
        lr_scale = self.configs[self.live[0]].lr_scale(epoch)
        for optimizer in self.optimizers:
            optimizer.set_lr_scale(lr_scale)
        order = epoch_orders(self.generator, data.train_sizes, device=data.device)
        rows = data.train_rows.gather(1, order)
        self._train_loss_sum.zero_()
        for step, groups in enumerate(self._plan):
            start = step * self.batch_size
            if len(groups) == 1 and groups[0][1] is None:
                count = groups[0][0]
                loss, grad = self._group(rows[:, start : start + count], self.flat, self.state)
                self._update(loss, grad, None)
                continue
            grad = torch.zeros_like(self.flat)
            loss = torch.zeros_like(self._train_loss_sum)
            active = torch.zeros_like(self.alive)
            for count, folds in groups:
                index = self._row_index(folds)
                state = {name: value[index] for name, value in self.state.items()}
                fold_rows = rows[list(folds), start : start + count]
                group_loss, group_grad = self._group(fold_rows, self.flat[index], state)
                grad[index], loss[index], active[index] = group_grad, group_loss, True
                for name, value in state.items():
                    self.state[name][index] = value  # the group's running statistics
            self._update(loss, grad, active)

    def _row_index(self, folds: tuple[int, ...] | None) -> Tensor:
        folds = tuple(range(self.n_folds)) if folds is None else folds
        index = [p * self.n_folds + fold for p in range(len(self.live)) for fold in folds]
        return torch.tensor(index, device=self.data.device)

    def _group(
        self, fold_rows: Tensor, flat: Tensor, state: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Loss and gradient of rows training on ``fold_rows`` ``(n_group_folds, count)``."""
        targets = _repeat_rows(self.data.targets[fold_rows], len(self.live))
        if self.program is not None:
            return self.program.loss_and_grad(
                self.stack.views(flat),
                self._program_inputs[fold_rows],
                targets,
                self.loss,
                state=state,
                prepared=self._prepared,
            )
        inputs = _repeat_rows(self.data.inputs[fold_rows], len(self.live))
        return self.stack.loss_and_grad(flat, state, inputs, targets, self.loss)

    def _update(self, loss: Tensor, grad: Tensor, active: Tensor | None) -> None:
        self.alive &= torch.isfinite(loss).unsqueeze(1)
        self._train_loss_sum += loss
        masked_step(self.optimizers, grad, self.alive, active)

    @torch.no_grad()
    def _evaluate(self) -> tuple[Tensor, Tensor]:
        """Each row's validation loss and metric, in chunks of at most ``max_eval_rows``
        (model, sample) rows."""
        data, n_live = self.data, len(self.live)
        chunk = max(1, self.max_eval_rows // self.flat.shape[0])
        outputs = [
            self._forward(data.val_inputs[:, start : start + chunk])
            for start in range(0, data.val_inputs.shape[1], chunk)
        ]
        predictions = torch.cat(outputs, dim=1)
        targets = _repeat_rows(data.val_targets, n_live)
        mask = data.val_mask.repeat(n_live, 1)
        per_sample = self.loss.stacked(predictions, targets)
        val_loss = (per_sample * mask).sum(dim=1) / mask.sum(dim=1)
        return val_loss, self.metric.stacked(predictions, targets, mask)

    def _forward(self, fold_inputs: Tensor) -> Tensor:
        """Evaluation outputs of every row on its fold's ``fold_inputs`` ``(n_folds, rows, ...)``."""
        if self.program is not None:
            return self.program.forward(self.stack.views(self.flat), fold_inputs, self.state)
        inputs = _repeat_rows(fold_inputs, len(self.live))
        return self.stack.forward(self.flat, self.state, inputs, train=False)

    def keep_early_params(self) -> None:
        self._early = (self.flat[:: self.n_folds].clone(), list(self.live))

    def drop_finished(self) -> None:
        """Trials that stopped leave the stack, so later epochs spend nothing on them."""
        keep = self.kept_positions()
        if len(keep) == len(self.live):
            return
        if not keep:
            self.live = []
            return
        row_index, self.flat, self.optimizers = keep_stack_rows(
            self.flat, self.optimizers, keep, self.n_folds
        )
        self.live = [self.live[position] for position in keep]
        self.state = {name: value[row_index] for name, value in self.state.items()}
        self.alive = self.alive[row_index]
        self._train_loss_sum = torch.zeros(self.flat.shape[0], device=self.flat.device)

    def final(self) -> tuple[Tensor, dict[str, Tensor]]:
        return self.flat, self.state

    def param_floats(self) -> int:
        state_copies = 1 + max((len(o.state) for o in self.optimizers), default=0)
        return self.stack_size * self.n_folds * self.stack.n_params * (state_copies + 1)


def _repeat_rows(values: Tensor, times: int) -> Tensor:
    """``(n, ...)`` repeated ``times`` along the first dimension: ``(times * n, ...)``."""
    return values if times == 1 else values.repeat(times, *[1] * (values.dim() - 1))
