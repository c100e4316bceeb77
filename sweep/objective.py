"""Where the rooms meet: an Optuna trial becomes a trainer config, and results go to MLflow.

Diverged (NaN/inf) and out-of-memory trials are pruned with their reason recorded, never failed:
TPE learns from PRUNED trials but ignores FAILED ones.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import optuna
import torch

from search_spaces.spec import SweepSpec
from sweep.tracking import RunBuffer, Tracker
from sweep.trial_params import suggest_params, train_config
from trainers import CVResult, EpochReport, FoldData, TrainConfig, TrainingDiverged, train_folds

PRUNE_REASON_ATTR = "prune_reason"


class Objective:
    """Callable for ``study.optimize``: returns the CV-mean validation loss at the last epoch."""

    def __init__(self, spec: SweepSpec, data: FoldData, tracker: Tracker) -> None:
        self.spec, self.data, self.tracker = spec, data, tracker

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest_params(trial, self.spec.search)
        config = train_config(params, self.spec)
        run = self.tracker.start_trial(trial.number, params, {"study": trial.study.study_name})
        trial.set_user_attr("mlflow_run_id", run.run_id)
        curves = _CurveRecorder(trial, run, self.data)
        started = time.perf_counter()
        status = "FAILED"  # anything but a result or a prune (a bug, Ctrl-C) fails the run
        try:
            result = self._train(config, curves)
            value = _record_result(trial, run, result)
            status = "FINISHED"
            return value
        except optuna.TrialPruned as pruned:
            status = "KILLED"
            reason = str(pruned) or "pruned"
            trial.set_user_attr(PRUNE_REASON_ATTR, reason)
            run.tag_dict({PRUNE_REASON_ATTR: reason})
            raise
        finally:
            wall_seconds = time.perf_counter() - started
            trial.set_user_attr("wall_seconds", wall_seconds)
            curves.store(trial)
            run.metric("wall_seconds", wall_seconds)
            self.tracker.finish_run(run, status)

    def _train(self, config: TrainConfig, curves: _CurveRecorder) -> CVResult:
        try:
            return train_folds(self.data, config, on_epoch=curves.on_epoch)
        except TrainingDiverged as err:
            raise optuna.TrialPruned(f"diverged: {err}") from err
        except torch.OutOfMemoryError as err:
            _free_device_memory()
            size = "full" if config.batch_size is None else config.batch_size
            raise optuna.TrialPruned(f"oom: out of device memory at batch_size={size}") from err


class _CurveRecorder:
    """Per-epoch callback: buffers curves for MLflow, reports to Optuna, asks the pruner."""

    def __init__(self, trial: optuna.Trial, run: RunBuffer, data: FoldData) -> None:
        self.trial, self.run = trial, run
        self.metric_name = "accuracy" if data.task == "classification" else "r2"
        self.train_loss: list[float] = []
        self.val_metric: list[float] = []
        self.epoch_seconds: list[float] = []

    def on_epoch(self, report: EpochReport) -> None:
        cv_val_loss = float(report.val_loss.mean())
        self.train_loss.append(float(report.train_loss.mean()))
        self.val_metric.append(float(report.val_metric.mean()))
        self.epoch_seconds.append(report.epoch_seconds)
        step = report.epoch
        self.run.metric_dict(
            {
                "train_loss": self.train_loss[-1],
                "val_loss": cv_val_loss,
                f"val_{self.metric_name}": self.val_metric[-1],
                "epoch_seconds": report.epoch_seconds,
                "lr": report.lr,
            },
            step,
        )
        for fold, (train, val, metric) in enumerate(
            zip(report.train_loss, report.val_loss, report.val_metric)
        ):
            self.run.metric_dict(
                {
                    f"fold_{fold}/train_loss": train,
                    f"fold_{fold}/val_loss": val,
                    f"fold_{fold}/val_{self.metric_name}": metric,
                },
                step,
            )
        self.run.flush_if_due()
        self.trial.report(cv_val_loss, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {step}: cv val_loss {cv_val_loss:.4g} behind other trials"
            )

    def store(self, trial: optuna.Trial) -> None:
        """Curves the report and the plots need later, beside Optuna's intermediate values."""
        trial.set_user_attr("train_loss_curve", self.train_loss)
        trial.set_user_attr(f"val_{self.metric_name}_curve", self.val_metric)
        if self.epoch_seconds:
            trial.set_user_attr("epoch_seconds", float(np.median(self.epoch_seconds)))


def _record_result(trial: optuna.Trial, run: RunBuffer, result: CVResult) -> float:
    """Fold scores and the CV summary, on the trial and on its (already finished) run."""
    metric = result.metric_name
    summary: dict[str, Any] = {
        "cv_val_loss": float(result.fold_val_loss.mean()),
        "cv_val_loss_std": float(result.fold_val_loss.std()),
        f"cv_{metric}": float(result.fold_val_metric.mean()),
        f"cv_{metric}_std": float(result.fold_val_metric.std()),
        "updates_per_epoch": result.updates_per_epoch,
        "resolved_batch_size": result.batch_size,
    }
    for key, value in summary.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("metric_name", metric)
    run.metric_dict(summary)
    for fold, (loss, score) in enumerate(zip(result.fold_val_loss, result.fold_val_metric)):
        run.metric_dict({f"fold_{fold}/score_val_loss": loss, f"fold_{fold}/score_{metric}": score})
    return summary["cv_val_loss"]


def _free_device_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
