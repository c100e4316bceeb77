"""The stacked training engine: the k folds of a trial, and trials that share a batch size, train
together as one stacked model.

A stack holds ``n_trials * n_folds`` models, row-wise in one flat parameter tensor. All rows see
the same batches of their fold (the permutations come from the stack's shared seed), so a trial's
curves equal those it would get trained alone. Each trial may use its own optimizer kind and
hyperparameters: rows are grouped by optimizer kind into contiguous blocks, each updated by one
:class:`~trainers.stacked_optim.StackedOptimizer`.

Folds of unequal size are exact: positions past a fold's end are masked out of its loss, and a fold
whose data ran out sits the step out. Losses accumulate on the device and are read once per epoch.
A row whose loss turns non-finite stops updating at that step; when a trial stops (pruned,
diverged), its rows leave the stack at the end of that epoch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from trainers.fold_data import FoldData, epoch_orders
from trainers.manual_backward import loss_and_grad, per_sample_loss
from trainers.memory import bytes_per_row, host_piece_rows, max_step_rows
from trainers.stacked_mlp import StackedMLP
from trainers.stacked_optim import (
    StackedOptimizer,
    keep_stack_rows,
    masked_step,
    optimizers_by_kind,
)
from trainers.step_capture import CompiledStep, compute_dtype
from trainers.train_config import CVResult, EpochReport, TrainConfig, TrainingDiverged

if TYPE_CHECKING:
    from trainers.module_engine import ModuleFoldData

# on_epoch(trial_index, report) -> False stops that trial; True (or None) lets it go on.
StackCallback = Callable[[int, EpochReport], "bool | None"]


@dataclass(frozen=True)
class StackOutcome:
    """How one trial of a stack ended: a result, a stop requested by ``on_epoch``, or divergence."""

    result: CVResult | None = None  # every epoch ran
    stopped_at_epoch: int | None = None  # on_epoch returned False after this (1-based) epoch
    diverged: TrainingDiverged | None = None


def stack_key(config: TrainConfig, data: FoldData) -> tuple:
    """Trials with equal keys can train in one stack (same batches, same model, same schedule)."""
    return (
        resolved_batch_size(config, data),
        config.model,
        config.epochs,
        config.schedule,
        config.step_size,
        config.gamma,
        config.seed,
        config.precision,
        config.capture,
    )


def resolved_batch_size(config: TrainConfig, data: FoldData | ModuleFoldData) -> int:
    """The batch size actually used: ``None`` and sizes above the largest fold mean full-batch."""
    n_max = max(data.train_sizes)
    return n_max if config.batch_size is None else min(config.batch_size, n_max)


def train_folds(
    data: FoldData,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> CVResult:
    """Train one model per fold, all stacked, and return every fold's per-epoch curves.

    ``on_epoch`` is called after each epoch with host-side numbers; raising from it (for example
    to prune) stops training. A NaN or infinite loss raises :class:`TrainingDiverged`.

    Example:
        >>> config = TrainConfig(batch_size=64, epochs=10, optimizer=OptimizerConfig("adam", 1e-3))
        >>> result = train_folds(data, config)
        >>> result.fold_val_loss.mean()
    """
    callback = None if on_epoch is None else (lambda _index, report: on_epoch(report))
    (outcome,) = train_stack(data, [config], on_epoch=callback)
    if outcome.diverged is not None:
        raise outcome.diverged
    assert outcome.result is not None
    return outcome.result


def train_stack(
    data: FoldData,
    configs: Sequence[TrainConfig],
    *,
    on_epoch: StackCallback | None = None,
    on_epoch_end: Callable[[], Iterable[int]] | None = None,
    max_rows: int | None = None,
    workers: int = 1,
) -> list[StackOutcome]:
    """Train several trials' folds as one stack; one :class:`StackOutcome` per config, in order.

    All configs must share :func:`stack_key`. ``on_epoch(i, report)`` is called for each live
    trial after each epoch; returning False stops trial ``i`` there. Then ``on_epoch_end()``, if
    given, may name more trials to stop, decided from all of the epoch's reports at once.
    Exceptions raised by either propagate and end the whole stack.

    ``max_rows`` caps the (model, sample) rows one step holds on the device, below the cap that
    comes from the free memory (:func:`trainers.memory.max_step_rows`). A larger batch is computed in
    chunks whose gradients add up to the exact batch gradient.

    ``workers`` > 1 trains the stack as that many sub-stacks of whole trials (at most one per
    trial), each in its own thread, meeting after every epoch: the stack uses that many cores
    without splitting each small op across them, so a core taken by another process slows the
    stack by its share of the work instead of stalling every op (see :mod:`trainers.threads`).
    Each thread should run torch with one intra-op thread; ``TrainingProblem.train`` sees to it.
    Rows are independent models, so the results are those of one stack up to rounding, except
    that dropout's draws depend on the sub-stack's shape.
    """
    keys = {stack_key(config, data) for config in configs}
    if len(keys) != 1:
        raise ValueError(
            f"a stack needs one batch size, model, schedule and seed, got {len(keys)} kinds."
        )
    groups = trial_groups(configs, workers)
    runs = [
        _StackRun(data, [configs[i] for i in group], max_rows=max_rows, stack_size=len(configs))
        for group in groups
    ]
    # Trial index -> (its run, its index there).
    where = {
        index: (run, local) for run, group in zip(runs, groups) for local, index in enumerate(group)
    }
    with _epoch_pool(len(runs)) as pool:
        for epoch in range(runs[0].epochs):
            live_runs = [run for run in runs if run.live]
            pool(_StackRun.train_epoch, live_runs, epoch)
            n_live = sum(len(run.live) for run in live_runs)
            for run, group in zip(runs, groups):
                if not run.live:
                    continue
                if epoch == 0 and run.epochs > 1:
                    run.keep_early_params()
                for local, report in run.read_epoch(epoch, stack_size=n_live):
                    if report is None:
                        continue
                    keep_going = True if on_epoch is None else on_epoch(group[local], report)
                    if keep_going is False:
                        run.outcomes[local] = StackOutcome(stopped_at_epoch=epoch + 1)
            for index in () if on_epoch_end is None else on_epoch_end():
                run, local = where.get(index, (None, None))
                if run is not None and local in run.live and local not in run.outcomes:
                    run.outcomes[local] = StackOutcome(stopped_at_epoch=epoch + 1)
            for run in live_runs:
                run.drop_finished()
            if not any(run.live for run in runs):
                break
    outcomes: dict[int, StackOutcome] = {}
    for run, group in zip(runs, groups):
        outcomes.update(zip(group, run.finish()))
    return [outcomes[index] for index in range(len(configs))]


def trial_groups(configs: Sequence[TrainConfig], workers: int) -> list[list[int]]:
    """The trials (indices into ``configs``) each of ``workers`` threads trains: the stack's own
    order (trials grouped by optimizer kind) cut into contiguous, near-equal parts, so the
    callbacks see the trials in the order one run would report them. At most one part per
    trial."""
    order = sorted(range(len(configs)), key=lambda i: configs[i].optimizer.name)
    parts = max(1, min(workers, len(order)))
    bounds = [round(k * len(order) / parts) for k in range(parts + 1)]
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@contextlib.contextmanager
def _epoch_pool(n_runs: int) -> Iterator[Callable[..., None]]:
    """``pool(work, runs, *args)`` calls ``work(run, *args)`` for every run and returns when all
    are done: in this thread for one run, else one thread per run (torch's ops release the GIL,
    so the threads compute at once). An exception in any run propagates."""
    if n_runs == 1:

        def run_here(work: Callable[..., None], runs: list, *args: object) -> None:
            for run in runs:
                work(run, *args)

        yield run_here
        return
    with ThreadPoolExecutor(max_workers=n_runs, thread_name_prefix="stack") as executor:

        def run_all(work: Callable[..., None], runs: list, *args: object) -> None:
            for future in [executor.submit(work, run, *args) for run in runs]:
                future.result()

        yield run_all


class _StackRun:
    """State of one stack while it trains: parameters, optimizers, curves, who is still live."""

    def __init__(
        self,
        data: FoldData,
        configs: list[TrainConfig],
        *,
        max_rows: int | None,
        stack_size: int | None = None,
    ) -> None:
        self.data, self.configs = data, configs
        first = configs[0]
        device, n_folds = data.device, data.n_folds
        self.epochs, self.n_folds = first.epochs, n_folds
        self.batch_size = resolved_batch_size(first, data)
        sizes = data.train_sizes
        self.n_steps = math.ceil(max(sizes) / self.batch_size)
        self.fold_steps = torch.tensor(
            [math.ceil(s / self.batch_size) for s in sizes], device=device
        )
        # Per position of an epoch's order: 1 / (real samples in its batch), 0 past the fold's end,
        # so a batch's weighted loss sum is its mean loss. Known from the sizes alone.
        weight_scale = np.zeros((n_folds, max(sizes)), dtype=np.float32)
        for fold, size in enumerate(sizes):
            for start in range(0, size, self.batch_size):
                stop = min(start + self.batch_size, size)
                weight_scale[fold, start:stop] = 1 / (stop - start)
        self.fold_weight_scale = torch.from_numpy(weight_scale).to(device)
        # From this step on, some fold may have run out of samples and must sit the step out.
        self.first_ragged_step = min(math.ceil(s / self.batch_size) for s in sizes)
        steps = torch.arange(self.n_steps, device=device).unsqueeze(1)
        self.fold_active = (steps < self.fold_steps.unsqueeze(0)).unsqueeze(2)  # (steps, folds, 1)
        self.model = StackedMLP(data.n_features, data.n_outputs, first.model)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.stack_size = len(configs) if stack_size is None else stack_size  # the whole stack's
        self.max_chunks = 1
        self.max_rows = max_step_rows(self.model, device)
        if max_rows is not None:
            self.max_rows = max(1, min(self.max_rows, max_rows))
        # On the CPU, the eager step also goes in cache-sized pieces (trainers.memory).
        self.piece_rows = host_piece_rows(self.model) if device.type == "cpu" else None
        # Trials sorted by optimizer kind, so each kind owns a contiguous block of rows.
        self.live = sorted(range(len(configs)), key=lambda i: configs[i].optimizer.name)
        initial = self.model.init_flat(n_folds, seed=first.seed, device=device)
        self.flat = initial.repeat(len(self.live), 1)
        self.optimizers = self._optimizers()
        self.generator = torch.Generator(device=device).manual_seed(first.seed)
        self.classification = data.task == "classification"
        self.precision, self.capture = first.precision, first.capture
        self.compute_dtype = compute_dtype(first.precision)
        self._compiled: CompiledStep | None = None
        self.curves: dict[int, dict[str, list]] = {
            i: {"train": [], "val": [], "metric": []} for i in self.live
        }
        self.epoch_seconds: list[float] = []
        self.outcomes: dict[int, StackOutcome] = {}
        self._train_loss_sum = torch.zeros(self.flat.shape[0], device=device)
        self.alive = torch.ones(self.flat.shape[0], 1, dtype=torch.bool, device=device)
        self._started = 0.0
        # fold 0's weights after epoch 1, one row per trial live then, and those trials
        self._early: tuple[Tensor, list[int]] | None = None

    def keep_early_params(self) -> None:
        """Keep a copy of each trial's fold-0 weights after the first epoch, so the gradient
        noise scale can be measured early in training as well as at its end."""
        self._early = (self.flat[:: self.n_folds].clone(), list(self.live))

    def _optimizers(self) -> list[StackedOptimizer]:
        live = [self.configs[i].optimizer for i in self.live]
        return optimizers_by_kind(self.flat, live, self.n_folds)

    def train_epoch(self, epoch: int) -> None:
        self._started = time.perf_counter()
        data, n_live = self.data, len(self.live)
        lr_scale = self.configs[self.live[0]].lr_scale(epoch)
        for optimizer in self.optimizers:
            optimizer.set_lr_scale(lr_scale)
        order = epoch_orders(self.generator, data.train_sizes, device=data.device)
        # Every trial sees the same batches of its folds: repeat the folds' rows per trial once.
        rows = data.train_rows.gather(1, order).repeat(n_live, 1)
        weight_scale = self.fold_weight_scale.repeat(n_live, 1)
        active = self.fold_active.repeat(1, n_live, 1)
        self._train_loss_sum.zero_()
        dropout = self.generator if self.configs[self.live[0]].model.dropout > 0 else None
        chunk = self.chunk_size(n_live)
        self.max_chunks = max(self.max_chunks, math.ceil(self.batch_size / chunk))
        compiled = self._compiled_step() if chunk == self.batch_size else None
        if compiled is None:
            chunk = self.piece_size(chunk, n_live)
        all_active = torch.ones(rows.shape[0], 1, dtype=torch.bool, device=data.device)
        for step in range(self.n_steps):
            start = step * self.batch_size
            stop = min(start + self.batch_size, rows.shape[1])
            if compiled is not None and stop - start == self.batch_size:
                batch_rows = rows[:, start:stop]
                draws = None
                if dropout is not None:
                    draws = self.model.draw_dropout(
                        rows.shape[0], stop - start, dropout, data.device
                    )
                self._train_loss_sum += compiled(
                    self.flat,
                    self.optimizers,
                    data.inputs[batch_rows],
                    data.targets[batch_rows],
                    weight_scale[:, start:stop],
                    active[step] if step >= self.first_ragged_step else all_active,
                    draws,
                )
                continue
            fold_loss, grad = self._loss_and_grad(
                rows, weight_scale, start, min(start + chunk, stop), dropout
            )
            for chunk_start in range(start + chunk, stop, chunk):
                chunk_loss, chunk_grad = self._loss_and_grad(
                    rows, weight_scale, chunk_start, min(chunk_start + chunk, stop), dropout
                )
                fold_loss.add_(chunk_loss)
                grad.add_(chunk_grad)
            step_active = active[step] if step >= self.first_ragged_step else None
            # A row whose loss went non-finite stops updating at once (no NaN spreads through
            # its optimizer state, no inf or NaN arithmetic for the rest of the epoch); its
            # non-finite loss sum makes read_epoch prune the trial as diverged.
            self.alive &= torch.isfinite(fold_loss).unsqueeze(1)
            masked_step(self.optimizers, grad, self.alive, step_active)
            self._train_loss_sum += fold_loss

    def _compiled_step(self) -> CompiledStep | None:
        """The compiled step for the stack as it is now (its optimizer blocks change as trials
        leave), or None when the configs do not ask for one."""
        if self.capture != "compile":
            return None
        kinds = tuple(optimizer.kind for optimizer in self.optimizers)
        if self._compiled is None or self._compiled.kinds != kinds:
            self._compiled = CompiledStep(
                self.model,
                self.optimizers,
                classification=self.classification,
                precision=self.precision,
                device=self.data.device,
            )
        return self._compiled

    def chunk_size(self, n_live: int) -> int:
        """Samples per model a step computes at once: the batch, or less when memory is short."""
        return max(1, min(self.batch_size, self.max_rows // (n_live * self.n_folds)))

    def piece_size(self, chunk: int, n_live: int) -> int:
        """``chunk`` cut to :attr:`piece_rows`, into equal pieces: a batch of 256 that takes
        two pieces goes as 128 + 128, not as 200 + 56."""
        if self.piece_rows is None:
            return chunk
        rows = n_live * self.n_folds
        pieces = math.ceil(chunk * rows / self.piece_rows)
        return math.ceil(chunk / pieces)

    def _loss_and_grad(
        self,
        rows: Tensor,
        weight_scale: Tensor,
        start: int,
        stop: int,
        dropout: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        batch_rows = rows[:, start:stop]
        return loss_and_grad(
            self.model,
            self.flat,
            self.data.inputs[batch_rows],
            self.data.targets[batch_rows],
            weight_scale[:, start:stop],
            classification=self.classification,
            dropout_generator=dropout,
            compute_dtype=self.compute_dtype,
        )

    def read_epoch(
        self, epoch: int, *, stack_size: int | None = None
    ) -> list[tuple[int, EpochReport | None]]:
        """The epoch's one host sync; returns a report per live trial (None if it diverged).
        ``stack_size``: the live trials of the whole stack, when this run is a part of it."""
        max_rows = self.max_rows if self.piece_rows is None else min(self.max_rows, self.piece_rows)
        val_loss, val_metric = _evaluate(self.model, self.flat, self.data, len(self.live), max_rows)
        fold_steps = self.fold_steps.repeat(len(self.live))
        train = (
            (self._train_loss_sum / fold_steps).cpu().numpy().reshape(len(self.live), self.n_folds)
        )
        val = val_loss.cpu().numpy().reshape(len(self.live), self.n_folds)
        metric = val_metric.cpu().numpy().reshape(len(self.live), self.n_folds)
        seconds = time.perf_counter() - self._started
        self.epoch_seconds.append(seconds)
        lr_scale = self.configs[self.live[0]].lr_scale(epoch)
        reports: list[tuple[int, EpochReport | None]] = []
        for position, index in enumerate(self.live):
            for which, values in (
                ("train loss", train[position]),
                ("validation loss", val[position]),
            ):
                if not np.all(np.isfinite(values)) and index not in self.outcomes:
                    self.outcomes[index] = StackOutcome(diverged=TrainingDiverged(epoch + 1, which))
            if index in self.outcomes:
                reports.append((index, None))
                continue
            curves = self.curves[index]
            curves["train"].append(train[position])
            curves["val"].append(val[position])
            curves["metric"].append(metric[position])
            reports.append(
                (
                    index,
                    EpochReport(
                        epoch=epoch + 1,
                        train_loss=train[position],
                        val_loss=val[position],
                        val_metric=metric[position],
                        epoch_seconds=seconds,
                        lr=self.configs[index].optimizer.lr * lr_scale,
                        stack_size=len(self.live) if stack_size is None else stack_size,
                    ),
                )
            )
        return reports

    def drop_finished(self) -> None:
        """Trials that stopped leave the stack, so later epochs spend nothing on them."""
        keep = [position for position, index in enumerate(self.live) if index not in self.outcomes]
        if len(keep) == len(self.live):
            return
        if not keep:
            self.live = []
            return
        row_index, new_flat, self.optimizers = keep_stack_rows(
            self.flat, self.optimizers, keep, self.n_folds
        )
        self.flat, self.live = new_flat, [self.live[position] for position in keep]
        self.alive = self.alive[row_index]
        self._train_loss_sum = torch.zeros(new_flat.shape[0], device=new_flat.device)

    def peak_memory(self) -> tuple[int, str]:
        """The stack's peak device memory: CUDA's own count, or an estimate from tensor sizes
        (data, parameters with optimizer state, and one step's activations) elsewhere."""
        device = self.data.device
        if device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(device)), "cuda peak allocated"
        data_bytes = sum(
            t.numel() * t.element_size()
            for t in (
                self.data.inputs,
                self.data.targets,
                self.data.val_inputs,
                self.data.val_targets,
            )
        )
        n_models = self.stack_size * self.n_folds
        state_copies = 1 + max((len(o.state) for o in self.optimizers), default=0)
        param_bytes = n_models * self.model.n_params * 4 * (state_copies + 1)  # + the gradient
        rows = n_models * self.chunk_size(self.stack_size)
        return data_bytes + param_bytes + rows * bytes_per_row(self.model), "estimate"

    def finish(self) -> list[StackOutcome]:
        peak_bytes, memory_kind = self.peak_memory()
        for position, index in enumerate(self.live):
            curves = self.curves[index]
            rows = slice(position * self.n_folds, (position + 1) * self.n_folds)
            self.outcomes[index] = StackOutcome(
                result=CVResult(
                    metric_name="accuracy" if self.data.task == "classification" else "r2",
                    train_loss=np.stack(curves["train"]),
                    val_loss=np.stack(curves["val"]),
                    val_metric=np.stack(curves["metric"]),
                    epoch_seconds=np.asarray(self.epoch_seconds[: len(curves["train"])]),
                    batch_size=self.batch_size,
                    updates_per_epoch=self.n_steps,
                    chunks_per_step=self.max_chunks,
                    stack_size=self.stack_size,
                    n_train_samples=sum(self.data.train_sizes),
                    peak_memory_bytes=peak_bytes,
                    memory_kind=memory_kind,
                    final_params=self.flat[rows].clone(),
                    early_params=self._early_rows(index),
                )
            )
        return [self.outcomes[index] for index in range(len(self.configs))]

    def _early_rows(self, index: int) -> Tensor | None:
        return early_row(self._early, index)


def early_row(early: tuple[Tensor, list[int]] | None, index: int) -> Tensor | None:
    """Trial ``index``'s fold-0 weights kept after the first epoch, from ``(rows, live
    trials then)``; None when none were kept for it."""
    if early is None or index not in early[1]:
        return None
    fold_zero, live = early
    return fold_zero[live.index(index)]


@torch.no_grad()
def _evaluate(
    model: StackedMLP, flat: Tensor, data: FoldData, n_trials: int, max_rows: int
) -> tuple[Tensor, Tensor]:
    """Per-row validation loss and metric (R² or accuracy), left on the device.

    Validation rows go through in chunks of at most ``max_rows`` (model, sample) rows.
    """
    classification = data.task == "classification"
    counts = data.val_mask.sum(dim=1)
    loss_sum = torch.zeros(flat.shape[0], device=flat.device)
    metric_sum = torch.zeros(flat.shape[0], device=flat.device)
    chunk = max(1, max_rows // flat.shape[0])
    for start in range(0, data.val_inputs.shape[1], chunk):
        window = slice(start, start + chunk)
        inputs, targets = data.val_inputs[:, window], data.val_targets[:, window]
        mask = data.val_mask[:, window]
        if n_trials > 1:
            inputs, targets = inputs.repeat(n_trials, 1, 1), targets.repeat(n_trials, 1)
            mask = mask.repeat(n_trials, 1)
        outputs = model.forward(flat, inputs)
        per_sample = per_sample_loss(outputs, targets, classification=classification)
        loss_sum += (per_sample * mask).sum(dim=1)
        if classification:
            metric_sum += ((outputs.argmax(dim=-1) == targets).float() * mask).sum(dim=1)
    counts = counts.repeat(n_trials)
    val_loss = loss_sum / counts
    if classification:
        return val_loss, metric_sum / counts
    # R² = 1 - SSE / SST, with SST from each fold's own validation targets.
    mean = (data.val_targets * data.val_mask).sum(dim=1, keepdim=True) / data.val_mask.sum(
        dim=1, keepdim=True
    )
    total = (((data.val_targets - mean) ** 2) * data.val_mask).sum(dim=1).repeat(n_trials)
    return val_loss, 1 - loss_sum / total.clamp_min(torch.finfo(total.dtype).tiny)
