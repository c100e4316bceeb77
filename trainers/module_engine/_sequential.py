"""The sequential run: for modules vmap cannot stack, each (trial, fold) model trains on its own
with ``torch.optim``, over the very batches the stacked run would give it.

Epochs are the outer loop, so the per-epoch permutations (one draw for all folds) and the
``on_epoch`` reports come in the same order as from the stacked run. Losses still accumulate on
the device and are read once per epoch; a model whose loss turns non-finite finishes that epoch
and its trial diverges.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainers.fold_data import epoch_orders
from trainers.losses import Loss, Metric
from trainers.module_engine._data import ModuleFoldData
from trainers.module_engine._run import RunBase
from trainers.module_engine._stack import ModuleStack
from trainers.train_config import TrainConfig


class SequentialRun(RunBase):
    """One ``nn.Module`` and one ``torch.optim`` optimizer per (trial, fold) row."""

    engine = "sequential"

    def __init__(
        self,
        data: ModuleFoldData,
        configs: list[TrainConfig],
        *,
        stack: ModuleStack,
        initial: Sequence[nn.Module],
        loss: Loss,
        metric: Metric,
        reason: str,
        max_eval_rows: int,
    ) -> None:
        super().__init__(data, configs, metric, reason)
        self.stack, self.loss, self.max_eval_rows = stack, loss, max_eval_rows
        self.models: list[nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        for index in self.live:
            optimizer_config = configs[index].optimizer
            for fold in range(self.n_folds):
                model = copy.deepcopy(initial[fold]).to(data.device)
                params = [p for p in model.parameters() if p.requires_grad]
                optimizer = optimizer_config.torch_class()(
                    params, **optimizer_config.torch_kwargs()
                )
                self.models.append(model)
                self.optimizers.append(optimizer)
        self.base_lrs = [[g["lr"] for g in o.param_groups] for o in self.optimizers]
        self._train_loss_sum = torch.zeros(len(self.models), device=data.device)
        self._started = 0.0

    def train_epoch(self, epoch: int) -> None:
        self._started = time.perf_counter()
        data = self.data
        for position, index in enumerate(self.live):
            lr_scale = self.configs[index].lr_scale(epoch)
            for row in range(position * self.n_folds, (position + 1) * self.n_folds):
                for group, base_lr in zip(self.optimizers[row].param_groups, self.base_lrs[row]):
                    group["lr"] = base_lr * lr_scale
        order = epoch_orders(self.generator, data.train_sizes, device=data.device)
        rows = data.train_rows.gather(1, order)
        self._train_loss_sum.zero_()
        for row, (model, optimizer) in enumerate(zip(self.models, self.optimizers)):
            fold = row % self.n_folds
            size = data.train_sizes[fold]
            model.train()
            for start in range(0, size, self.batch_size):
                batch = rows[fold, start : min(start + self.batch_size, size)]
                outputs = model(data.inputs[batch])
                loss = self.loss.stacked(outputs.unsqueeze(0), data.targets[batch].unsqueeze(0))
                loss = loss.mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self._train_loss_sum[row] += loss.detach()

    @torch.no_grad()
    def _evaluate(self) -> tuple[Tensor, Tensor]:
        data = self.data
        losses, metrics = [], []
        chunk = max(1, self.max_eval_rows)
        for row, model in enumerate(self.models):
            fold = row % self.n_folds
            n_val = data.val_sizes[fold]
            model.eval()
            inputs = data.val_inputs[fold, :n_val]
            outputs = torch.cat(
                [model(inputs[start : start + chunk]) for start in range(0, n_val, chunk)]
            ).unsqueeze(0)
            targets = data.val_targets[fold, :n_val].unsqueeze(0)
            mask = torch.ones(1, n_val, device=data.device)
            losses.append(self.loss.stacked(outputs, targets).mean(dim=1))
            metrics.append(self.metric.stacked(outputs, targets, mask))
        return torch.cat(losses), torch.cat(metrics)

    def drop_finished(self) -> None:
        keep = self.kept_positions()
        rows = [p * self.n_folds + fold for p in keep for fold in range(self.n_folds)]
        self.models = [self.models[row] for row in rows]
        self.optimizers = [self.optimizers[row] for row in rows]
        self.base_lrs = [self.base_lrs[row] for row in rows]
        self.live = [self.live[position] for position in keep]
        self._train_loss_sum = torch.zeros(len(self.models), device=self.data.device)

    def final(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The live models in the stacked layout: flat parameter rows and stacked state."""
        if not self.models:
            return torch.empty(0, self.stack.n_params), {}
        flat = torch.stack([self.stack.flat_row(model) for model in self.models])
        _, state = self.stack.stack(self.models)
        return flat, state

    def param_floats(self) -> int:
        state = sum(
            value.numel()
            for optimizer in self.optimizers
            for param_state in optimizer.state.values()
            for value in param_state.values()
            if isinstance(value, Tensor)
        )
        return 2 * len(self.models) * self.stack.n_params + state
