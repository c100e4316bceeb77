"""Run a validated sweep: create or resume the study and its parent MLflow run, then trials.

Only :func:`sweep.runner.run_sweep` calls this, after every input was checked.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from search_spaces import SweepSpec
from sweep import console
from sweep.batch_size_summary import as_metrics, batch_size_rows
from sweep.best_config import ARTIFACT_FILE
from sweep.export import best_config_from_trial
from sweep.learning_curves_plot import close, learning_curves_figure
from sweep.runner import SweepOutcome
from sweep.sqlite_tuning import tune_sqlite_connections
from sweep.study import BUDGET_ATTR, counted_trials, open_study
from sweep.tracking import PARENT_RUN_ATTR, RunBuffer, Tracker
from sweep.trial_loop import run_trials
from sweep.trial_record import MLFLOW_RUN_ATTR
from trainers import Dataset, Fold, prepare_folds


def run_validated(
    *,
    spec: SweepSpec,
    dataset: Dataset,
    folds: list[Fold],
    device: torch.device,
    study_name: str,
    storage_url: str,
    tracking_uri: str,
    resuming: bool,
) -> SweepOutcome:
    tune_sqlite_connections()
    data = prepare_folds(dataset, folds, device=device)
    tracker = Tracker(tracking_uri, study_name)
    study = open_study(
        spec, study_name=study_name, storage_url=storage_url, context=_context(spec, dataset)
    )
    parent_run_id = tracker.open_parent(
        existing_run_id=study.user_attrs.get(PARENT_RUN_ATTR),
        tags={"study": study_name, "space": spec.path, "storage": storage_url},
    )
    if study.user_attrs.get(PARENT_RUN_ATTR) != parent_run_id:
        study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
        _log_space(tracker, spec, dataset, len(folds))
    done = counted_trials(study)
    remaining = max(0, spec.budget.trials - done)
    _say(
        f"{'Resuming' if resuming else 'Created'} study {study_name!r}: {done}/{spec.budget.trials} trials done, "
        f"{remaining} to run on {device}.\n"
        f"  data: {dataset.name} ({dataset.n_samples} rows, {dataset.n_features} features, {dataset.task}), "
        f"{len(folds)}-fold CV, {spec.training.epochs} epochs\n"
        f"  optuna storage: {storage_url}\n  mlflow tracking: {tracking_uri} (experiment {tracker.experiment_id})"
    )
    started = time.perf_counter()
    progress = console.TrialProgress(total=spec.budget.trials, done=done, study_name=study_name)
    status = "FINISHED"
    try:
        if remaining:
            run_trials(study, spec, data, tracker, on_trial_end=progress)
    except KeyboardInterrupt:
        status = "KILLED"
        progress.close()
        _say(
            f"\nInterrupted. Finished trials are saved; rerun the same command to resume study {study_name!r}."
        )
        raise
    finally:
        progress.close()
        _finish_parent(tracker, study, status)
    trials = study.get_trials(deepcopy=False)
    _say("\n" + console.trials_table(trials))
    _say("\nPer batch size:\n" + console.batch_size_table(batch_size_rows(trials)))
    ran = counted_trials(study) - done
    _say(
        f"\n{ran} trial(s) in {time.perf_counter() - started:.1f} s. "
        f"Browse: make ui   Export: sweep best --study {study_name}"
    )
    return SweepOutcome(
        study_name=study_name,
        storage_url=storage_url,
        tracking_uri=tracking_uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=parent_run_id,
        trials_run=ran,
        counted_trials=counted_trials(study),
        budget=spec.budget.trials,
    )


def _context(spec: SweepSpec, dataset: Dataset) -> dict[str, Any]:
    """What an exported best config needs beyond the trial's own params."""
    return {
        "schedule": {
            "name": spec.training.schedule,
            "epochs": spec.training.epochs,
            "step_size": spec.training.step_size,
            "gamma": spec.training.gamma,
        },
        "model": dataclasses.asdict(spec.model),
        "n_folds": spec.cv.folds,
        "seed": spec.cv.seed,
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint,
        "task": dataset.task,
    }


def _log_space(tracker: Tracker, spec: SweepSpec, dataset: Dataset, n_folds: int) -> None:
    buffer = tracker.parent_buffer()
    buffer.param_dict(
        {
            "dataset": dataset.name,
            "data_fingerprint": dataset.fingerprint,
            "task": dataset.task,
            "n_rows": dataset.n_samples,
            "n_features": dataset.n_features,
            "folds": n_folds,
            "epochs": spec.training.epochs,
            "schedule": spec.training.schedule,
            "model_hidden": list(spec.model.hidden),
            "model_activation": spec.model.activation,
            "search_batch_size": list(spec.search.batch_size),
            "search_optimizer": list(spec.search.optimizer),
            "search_lr": spec.search.lr,
            "sampler": spec.sampler.name,
            "pruner": spec.pruner,
        }
    )
    buffer.flush()


def _finish_parent(tracker: Tracker, study: optuna.Study, status: str) -> None:
    """Best trial, best batch size, per-batch-size figures and the learning-curve plot."""
    trials = study.get_trials(deepcopy=False)
    buffer = tracker.parent_buffer()
    buffer.metric_dict(as_metrics(batch_size_rows(trials)))
    buffer.metric("counted_trials", counted_trials(study))
    dicts: dict[str, dict] = {}
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best_trial = study.best_trial
        best = best_config_from_trial(study, best_trial)
        if counted_trials(study) >= study.user_attrs.get(BUDGET_ATTR, 0):
            buffer.param_dict(
                {
                    "best_batch_size": best.batch_size,
                    "best_lr": best.lr,
                    "best_optimizer": best.optimizer,
                }
            )
        buffer.tag_dict(
            {
                "best_batch_size": best.batch_size,
                "best_trial_number": best_trial.number,
                "best_trial_run_id": best_trial.user_attrs.get(MLFLOW_RUN_ATTR, ""),
            }
        )
        buffer.metric_dict(
            {"best_cv_val_loss": best_trial.value, "best_trial_number": best_trial.number}
        )
        dicts[ARTIFACT_FILE] = best.to_dict()
    _drop_params_already_logged(buffer)
    buffer.flush()
    figure = learning_curves_figure(trials)
    try:
        tracker.log_parent_artifacts(dicts=dicts, figures={"learning_curves.png": figure})
    finally:
        close(figure)
    tracker.end_parent(status)


def _drop_params_already_logged(buffer: RunBuffer) -> None:
    """MLflow params are write-once. A study whose budget is raised later may find a new best:
    its params keep the first value, while the tag and best_config.json follow the current best."""
    existing = buffer.client.get_run(buffer.run_id).data.params
    buffer.params = [
        p for p in buffer.params if p.key not in existing or existing[p.key] == p.value
    ]


def _say(message: str) -> None:
    print(message, file=sys.stdout, flush=True)
