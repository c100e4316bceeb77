"""What the stacked and the sequential runs share: the stack's shape, who is live, the curves,
the epoch's reports, and the outcome types that say which engine ran and why."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from trainers.engine import StackOutcome, early_row, resolved_batch_size
from trainers.losses import Metric
from trainers.module_engine._data import ModuleFoldData
from trainers.stacked_mlp import MLPConfig
from trainers.train_config import CVResult, EpochReport, TrainConfig, TrainingDiverged

ENGINES = ("stacked", "sequential")


@dataclass(frozen=True)
class ModuleCVResult(CVResult):
    """A :class:`~trainers.train_config.CVResult` of the module engine.

    ``final_params`` rows are in :class:`~trainers.module_engine.ModuleStack`'s flat layout;
    ``final_state`` holds each fold's buffers (running statistics) and frozen parameters.
    """

    engine: str = "stacked"  # one of ENGINES
    engine_reason: str = ""  # why that engine: what the vmap probe found, or that it was asked
    higher_is_better: bool = True  # the direction of val_metric
    final_state: dict[str, Tensor] = field(default_factory=dict)  # name -> (n_folds, ...)


@dataclass(frozen=True)
class ModuleOutcome(StackOutcome):
    """A :class:`~trainers.engine.StackOutcome` that also says which engine trained the trial."""

    engine: str = "stacked"
    engine_reason: str = ""


def stack_key(config: TrainConfig, data: ModuleFoldData) -> tuple:
    """Trials with equal keys can train in one stack (same batches, schedule and initial weights)."""
    return (
        resolved_batch_size(config, data),
        config.epochs,
        config.schedule,
        config.step_size,
        config.gamma,
        config.seed,
    )


def check_configs(configs: list[TrainConfig], data: ModuleFoldData) -> None:
    """Reject settings this engine would silently ignore, and stacks that cannot share batches."""
    if not configs:
        raise ValueError("configs is empty; pass at least one TrainConfig.")
    for config in configs:
        if config.precision != "fp32" or config.capture != "off":
            raise ValueError(
                f"the module engine trains in fp32 without capture, but got "
                f"precision={config.precision!r}, capture={config.capture!r}; leave both unset."
            )
        if config.model != MLPConfig():
            raise ValueError(
                f"the module engine builds its model with the factory and model_kwargs, so "
                f"TrainConfig.model={config.model!r} would do nothing; leave it unset."
            )
    keys = {stack_key(config, data) for config in configs}
    if len(keys) != 1:
        raise ValueError(
            f"a stack needs one batch size, epoch count, schedule and seed, got {len(keys)} kinds."
        )


class RunBase:
    """Bookkeeping of one stack while it trains; subclasses hold the models and train them."""

    engine = "stacked"

    def __init__(
        self, data: ModuleFoldData, configs: list[TrainConfig], metric: Metric, reason: str
    ) -> None:
        self.data, self.configs, self.metric, self.reason = data, configs, metric, reason
        first = configs[0]
        self.epochs, self.n_folds = first.epochs, data.n_folds
        self.batch_size = resolved_batch_size(first, data)
        self.n_steps = math.ceil(max(data.train_sizes) / self.batch_size)
        self.fold_steps = torch.tensor(
            [math.ceil(size / self.batch_size) for size in data.train_sizes],
            dtype=torch.float32,
            device=data.device,
        )
        self.stack_size = len(configs)
        # Trials sorted by optimizer kind, so each kind owns a contiguous block of rows.
        self.live = sorted(range(len(configs)), key=lambda i: configs[i].optimizer.name)
        self.generator = torch.Generator(device=data.device).manual_seed(first.seed)
        self.curves: dict[int, dict[str, list]] = {
            i: {"train": [], "val": [], "metric": []} for i in self.live
        }
        self.epoch_seconds: list[float] = []
        self.outcomes: dict[int, ModuleOutcome] = {}
        # fold 0's weights after epoch 1, one row per trial live then, and those trials
        self._early: tuple[Tensor, list[int]] | None = None

    def keep_early_params(self) -> None:
        """Keep each live trial's fold-0 weights after the first epoch (where the stack holds
        them in one flat tensor), so the gradient noise scale can be measured early as well."""

    def read_epoch(self, epoch: int) -> list[tuple[int, EpochReport | None]]:
        """The epoch's one host sync; returns a report per live trial (None if it diverged).
        Subclasses keep ``_train_loss_sum`` (per row, on the device), ``_started`` and
        ``_evaluate()``."""
        val_loss, val_metric = self._evaluate()
        train = self._train_loss_sum / self.fold_steps.repeat(len(self.live))
        seconds = time.perf_counter() - self._started
        return self.report_epoch(epoch, train, val_loss, val_metric, seconds)

    def report_epoch(
        self, epoch: int, train: Tensor, val: Tensor, metric: Tensor, seconds: float
    ) -> list[tuple[int, EpochReport | None]]:
        """The epoch's reports from per-row ``(n_live * n_folds,)`` device tensors: the one
        host sync of the epoch. A trial with a non-finite loss diverges (its report is None)."""
        shape = (len(self.live), self.n_folds)
        train_np = train.cpu().numpy().reshape(shape)
        val_np, metric_np = val.cpu().numpy().reshape(shape), metric.cpu().numpy().reshape(shape)
        self.epoch_seconds.append(seconds)
        reports: list[tuple[int, EpochReport | None]] = []
        for position, index in enumerate(self.live):
            for which, values in (
                ("train loss", train_np[position]),
                ("validation loss", val_np[position]),
            ):
                if not np.all(np.isfinite(values)) and index not in self.outcomes:
                    diverged = TrainingDiverged(epoch + 1, which)
                    self.outcomes[index] = self._outcome(diverged=diverged)
            if index in self.outcomes:
                reports.append((index, None))
                continue
            curves = self.curves[index]
            curves["train"].append(train_np[position])
            curves["val"].append(val_np[position])
            curves["metric"].append(metric_np[position])
            config = self.configs[index]
            report = EpochReport(
                epoch=epoch + 1,
                train_loss=train_np[position],
                val_loss=val_np[position],
                val_metric=metric_np[position],
                epoch_seconds=seconds,
                lr=config.optimizer.lr * config.lr_scale(epoch),
                stack_size=len(self.live),
            )
            reports.append((index, report))
        return reports

    def stop(self, index: int, epoch: int) -> None:
        """Trial ``index`` stops after 0-based ``epoch`` (on_epoch or on_epoch_end asked)."""
        if index in self.live and index not in self.outcomes:
            self.outcomes[index] = self._outcome(stopped_at_epoch=epoch + 1)

    def kept_positions(self) -> list[int]:
        """Positions in ``live`` of the trials that go on after this epoch."""
        return [p for p, index in enumerate(self.live) if index not in self.outcomes]

    def _outcome(self, **fields: object) -> ModuleOutcome:
        return ModuleOutcome(engine=self.engine, engine_reason=self.reason, **fields)  # type: ignore[arg-type]

    def finish(
        self, final_params: Tensor, final_state: dict[str, Tensor], peak: tuple[int, str]
    ) -> list[ModuleOutcome]:
        """Outcomes in config order; ``final_params``/``final_state`` are the live rows'."""
        for position, index in enumerate(self.live):
            curves = self.curves[index]
            rows = slice(position * self.n_folds, (position + 1) * self.n_folds)
            result = ModuleCVResult(
                metric_name=self.metric.name,
                train_loss=np.stack(curves["train"]),
                val_loss=np.stack(curves["val"]),
                val_metric=np.stack(curves["metric"]),
                epoch_seconds=np.asarray(self.epoch_seconds[: len(curves["train"])]),
                batch_size=self.batch_size,
                updates_per_epoch=self.n_steps,
                stack_size=self.stack_size,
                n_train_samples=sum(self.data.train_sizes),
                peak_memory_bytes=peak[0],
                memory_kind=peak[1],
                final_params=final_params[rows].clone(),
                engine=self.engine,
                engine_reason=self.reason,
                higher_is_better=self.metric.higher_is_better,
                final_state={name: value[rows].clone() for name, value in final_state.items()},
                early_params=early_row(self._early, index),
            )
            self.outcomes[index] = self._outcome(result=result)
        return [self.outcomes[index] for index in range(len(self.configs))]

    def peak_memory(self, n_param_floats: int) -> tuple[int, str]:
        """CUDA's own peak, or elsewhere an estimate: the data plus ``n_param_floats`` floats
        (parameters, gradients, optimizer state); activations are not counted there."""
        device = self.data.device
        if device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(device)), "cuda peak allocated"
        data = self.data
        tensors = (data.inputs, data.targets, data.val_inputs, data.val_targets)
        data_bytes = sum(t.numel() * t.element_size() for t in tensors)
        return data_bytes + 4 * n_param_floats, "estimate"
