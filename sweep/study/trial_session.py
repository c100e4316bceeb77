"""Where the rooms meet: one Optuna trial, from ask to tell, with its tracking run.

A session turns the trial into a trainer config, takes the engine's per-epoch reports (curves to
the tracking sink, values to Optuna for the pruner), and tells the study how the trial
ended. Diverged (NaN/inf) and out-of-memory trials are PRUNED with their reason recorded, never
FAILED: TPE learns from pruned trials but ignores failed ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from search_spaces.spec import SweepSpec
from sweep.study.attrs import FAIL_REASON_ATTR
from sweep.study.objectives import cv_loss, objective_values
from sweep.study.trial_params import suggest_params, train_config
from sweep.study.trial_record import RECORD_ATTR, TrialRecord
from sweep.tracking.sink import TrackingSink
from trainers import CVResult, EpochReport, StackOutcome, TrainConfig
from trainers.module_engine.noise import NoiseNotMeasured
from trainers.noise_scale import NoiseScale
from trainers.problem import TrainingProblem

PRUNE_REASON_TAG = "prune_reason"
BUILTIN_ENGINE_REASON = "the built-in MLP on its hand-written stacked engine"


class TrialSession:
    """One asked trial: its params, its config, its MLflow run and its curves."""

    def __init__(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        spec: SweepSpec,
        sink: TrackingSink,
        *,
        metric_name: str,
        full_batch_size: int,
        report_to_pruner: bool = True,
    ) -> None:
        self.study, self.sink = study, sink
        self.trial = trial
        self.params: dict[str, Any] = suggest_params(self.trial, spec.search)
        self.objectives = spec.objectives
        self.config: TrainConfig = train_config(self.params, spec, full_batch_size=full_batch_size)
        self.metric_name = metric_name  # "r2", "accuracy", or the space's metric
        logged = dict(self.params)
        if spec.search.lr_scaling is not None:  # "lr" is then the rate at the reference batch size
            logged["effective_lr"] = self.config.optimizer.lr
        # A handle: the sink may create the run later (see TrackingSink.run_id).
        self.run_id = sink.start_trial(self.trial.number, logged, {"study": study.study_name})
        # Without a pruner, Optuna needs no per-epoch report: the curves travel in the record.
        self.report_to_pruner = report_to_pruner
        # The run id goes to Optuna with the record, in its one write at the end; until then the
        # reaper finds the run by its trial-number tag.
        self.record = TrialRecord(metric_name=metric_name, effective_lr=self.config.optimizer.lr)
        self.train_loss = self.record.train_loss_curve
        self.val_loss = self.record.val_loss_curve
        self.val_metric = self.record.val_metric_curve
        self.epoch_seconds: list[float] = []
        self.prune_reason: str | None = None
        self.started = time.perf_counter()
        self.done = False
        self.final_params: torch.Tensor | None = None
        self.engine_tags: dict[str, str] = {}  # set once the engine has trained the trial

    @property
    def number(self) -> int:
        return self.trial.number

    def on_epoch(self, report: EpochReport) -> None:
        """Buffer the epoch's curves and report the CV loss to Optuna (for the pruner, which
        :func:`sweep.pruning.trials_to_prune` asks once per epoch for the whole stack)."""
        cv_val_loss = float(report.val_loss.mean())
        self.train_loss.append(float(report.train_loss.mean()))
        self.val_loss.append(cv_val_loss)
        self.val_metric.append(float(report.val_metric.mean()))
        # The stack's epoch is shared by its trials: each is charged its share.
        self.epoch_seconds.append(report.epoch_seconds / report.stack_size)
        step = report.epoch
        metric = f"val_{self.metric_name}"
        metrics = {
            "train_loss": self.train_loss[-1],
            "val_loss": cv_val_loss,
            metric: self.val_metric[-1],
            "epoch_seconds": self.epoch_seconds[-1],
            "stack_size": report.stack_size,
            "lr": report.lr,
        }
        for fold, (train, val, score) in enumerate(
            zip(report.train_loss, report.val_loss, report.val_metric)
        ):
            metrics[f"fold_{fold}/train_loss"] = train
            metrics[f"fold_{fold}/val_loss"] = val
            metrics[f"fold_{fold}/{metric}"] = score
        self.sink.log_epoch(self.run_id, step, metrics)
        if self.report_to_pruner:
            self.trial.report(cv_val_loss, step)

    def finish(self, outcome: StackOutcome) -> None:
        """Tell the study how the trial ended, and end its MLflow run to match."""
        # Which engine trained the trial, and why: the generic engine falls back to one model at
        # a time with torch.optim when vmap cannot run the module.
        self.record.engine = getattr(outcome, "engine", "stacked")
        self.engine_tags = {
            "engine": self.record.engine,
            "engine_reason": getattr(outcome, "engine_reason", "") or BUILTIN_ENGINE_REASON,
        }
        if outcome.result is not None:
            self.final_params = outcome.result.final_params[0]  # fold 0, for the noise scale
            metrics = self._record_result(outcome.result)
            seconds = float(np.median(self.epoch_seconds))
            values = objective_values(
                self.objectives, loss=self.record.cv_val_loss, epoch_seconds=seconds
            )
            self._end(TrialState.COMPLETE, "FINISHED", values=values, metrics=metrics)
        elif outcome.diverged is not None:
            self.prune(f"diverged: {outcome.diverged}")
        else:
            self.prune(self.prune_reason or "pruned")

    def prune(self, reason: str) -> None:
        self.record.prune_reason = reason
        self._end(TrialState.PRUNED, "KILLED", tags={PRUNE_REASON_TAG: reason})

    def fail(self, reason: str) -> None:
        """A bug or an interrupt: the trial is FAILED (and retried later), never left RUNNING."""
        if not self.done:
            with contextlib.suppress(Exception):  # _end tells FAIL even if this write fails
                self.trial.set_user_attr(FAIL_REASON_ATTR, reason)
        self._end(TrialState.FAIL, "FAILED", tags={FAIL_REASON_ATTR: reason})

    def _end(
        self,
        state: TrialState,
        run_status: str,
        values: list[float] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.record.wall_seconds = time.perf_counter() - self.started
            if self.epoch_seconds:
                self.record.epoch_seconds = float(np.median(self.epoch_seconds))
            self.record.mlflow_run_id = self.sink.run_id(self.run_id)
            self.trial.set_user_attr(RECORD_ATTR, self.record.as_attr())
            metrics = {**(metrics or {}), "wall_seconds": self.record.wall_seconds}
            tags = {**self.engine_tags, **(tags or {})}
            self.sink.end_trial(self.run_id, run_status, metrics=metrics, tags=tags)
            self.study.tell(self.trial, values, state=state)
        except BaseException as err:
            fail_trial(self.study, self.trial, error_reason(err))
            raise

    def _record_result(self, result: CVResult) -> dict[str, float]:
        """The CV summary into the record; returns it, with the fold scores, as run metrics."""
        record, metric = self.record, result.metric_name
        record.cv_val_loss = float(result.fold_val_loss.mean())
        record.cv_val_loss_std = float(result.fold_val_loss.std())
        record.cv_metric = float(result.fold_val_metric.mean())
        record.cv_metric_std = float(result.fold_val_metric.std())
        record.updates_per_epoch = result.updates_per_epoch
        record.resolved_batch_size = result.batch_size
        record.chunks_per_step = result.chunks_per_step
        record.fold_val_loss = [float(v) for v in result.fold_val_loss]
        record.stack_size = result.stack_size
        record.n_train_samples = result.n_train_samples
        record.peak_memory_bytes = result.peak_memory_bytes
        record.memory_kind = result.memory_kind
        metrics = {
            "cv_val_loss": record.cv_val_loss,
            "cv_val_loss_std": record.cv_val_loss_std,
            f"cv_{metric}": record.cv_metric,
            f"cv_{metric}_std": record.cv_metric_std,
            "updates_per_epoch": record.updates_per_epoch,
            "resolved_batch_size": record.resolved_batch_size,
            "chunks_per_step": record.chunks_per_step,
            "stack_size": record.stack_size,
            "n_train_samples": record.n_train_samples,
            "peak_memory_bytes": record.peak_memory_bytes,
        }
        for fold, (loss, score) in enumerate(zip(result.fold_val_loss, result.fold_val_metric)):
            metrics[f"fold_{fold}/score_val_loss"] = loss
            metrics[f"fold_{fold}/score_{metric}"] = score
        return metrics


def record_gradient_noise(
    study: optuna.Study,
    stack: Sequence[TrialSession],
    outcomes: Sequence[StackOutcome],
    problem: TrainingProblem,
) -> None:
    """Measure the gradient noise scale of the trials of ``stack`` that end as the best of their
    batch size so far, after the first epoch and at the end, on the weights the engine kept; the
    measurement goes into each one's record, written with the trial's end.

    A report recommends the best trial of a batch size, and a trial that is not the best of its
    batch size when it ends never becomes it, so a report always finds its trial measured, and
    nothing is ever trained again for it. One storage read per stack; one measuring step per
    batch size for all the stack's candidates at once.
    """
    finished = [
        (session, outcome.result)
        for session, outcome in zip(stack, outcomes)
        if outcome.result is not None
    ]
    if not finished:
        return
    best_so_far: dict[str, float] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        size = str(trial.params.get("batch_size"))
        best_so_far[size] = min(best_so_far.get(size, math.inf), cv_loss(trial))
    candidates: dict[str, tuple[TrialSession, CVResult]] = {}
    for session, result in finished:
        size, loss = str(session.params["batch_size"]), float(result.fold_val_loss.mean())
        held = candidates.get(size)
        if loss <= best_so_far.get(size, math.inf) and (
            held is None or loss < float(held[1].fold_val_loss.mean())
        ):
            candidates[size] = (session, result)
    if not candidates:
        return
    first = next(iter(candidates.values()))[0]
    rows, stages = [], []
    for session, result in candidates.values():
        epochs = session.config.epochs
        if result.early_params is not None:
            rows.append(result.early_params)
            stages.append((session, "early", 1))
        rows.append(result.final_params[0])
        stages.append((session, "end", epochs))
    try:
        scales = problem.noise_scales(first.config, torch.stack(rows))
    except NoiseNotMeasured as why:
        for session, _ in candidates.values():
            session.record.gradient_noise_note = str(why)
        return
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        for session, _ in candidates.values():
            session.record.gradient_noise_note = "out of device memory measuring it"
        return
    for (session, stage, epoch), scale in zip(stages, scales):
        session.record.gradient_noise.append(noise_attr(scale, stage=stage, epoch=epoch))


def noise_attr(scale: NoiseScale, *, stage: str, epoch: int) -> dict[str, Any]:
    """A measurement as the record stores it (JSON: non-finite numbers as None)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    fields = {key: plain(value) for key, value in dataclasses.asdict(scale).items()}
    return {"stage": stage, "epoch": epoch, "fold": 0, **fields}


def error_reason(err: BaseException) -> str:
    """An exception as a trial's fail reason: its type and message."""
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def fail_trial(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """FAIL ``trial`` with ``reason`` (user attr ``fail_reason``) unless it ended already: for a
    trial whose session could not end it. Errors are swallowed: the caller is raising the error
    that brought it here, and a trial the storage cannot fail now is found later, its worker gone
    (:func:`sweep.study.heartbeats.fail_orphaned_trials`)."""
    with contextlib.suppress(Exception):
        trial.set_user_attr(FAIL_REASON_ATTR, reason)
    with contextlib.suppress(Exception):
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
