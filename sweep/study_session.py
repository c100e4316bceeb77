"""Run a validated sweep in this process: open (or create) the study and its parent MLflow run,
reap what dead workers left, run trials until the budget is met or a signal asks to stop, and
summarise. ``sweep run`` and ``sweep worker`` both end up here, after every input was checked.
"""

from __future__ import annotations

import math
import sys
import time

import optuna
import torch
from optuna.trial import TrialState

from search_spaces import SweepSpec
from sweep import console
from sweep.gc_freeze import frozen_heap
from sweep.graceful_stop import GracefulStop
from sweep.heartbeats import fail_stale_trials
from sweep.objectives import argmin_trial, cv_loss
from sweep.parent_summary import finish_parent
from sweep.reaper import reap_runs
from sweep.runner import SweepOutcome
from sweep.sqlite_tuning import tune_sqlite_connections
from sweep.stores import open_stores
from sweep.study import counted_trials
from sweep.study_report import StudyReport
from sweep.trial_loop import TrainingClock, run_trials
from trainers import Dataset, Fold, prepare_folds


@frozen_heap()
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
    show_progress: bool = True,
) -> SweepOutcome:
    started = time.perf_counter()  # the sweep's own work (stores, Optuna, MLflow, report) too
    tune_sqlite_connections()
    data = prepare_folds(dataset, folds, device=device)
    study, tracker = open_stores(
        spec,
        dataset,
        folds,
        study_name=study_name,
        storage_url=storage_url,
        tracking_uri=tracking_uri,
    )
    fail_stale_trials(study)  # before reaping: the dead workers' trials must be FAILED first
    reap_runs(study, tracker)
    done = counted_trials(study)
    remaining = max(0, spec.budget.trials - done)
    say(
        f"{'Resuming' if resuming else 'Created'} study {study_name!r}: {done}/{spec.budget.trials} "
        f"trials done, {remaining} to run on {device}.\n"
        f"  data: {dataset.name} ({dataset.n_samples} rows, {dataset.n_features} features, "
        f"{dataset.task}), {len(folds)}-fold CV, {spec.training.epochs} epochs\n"
        f"  optuna storage: {storage_url}\n"
        f"  mlflow tracking: {tracking_uri} (experiment {tracker.experiment_id})"
    )
    best = argmin_trial(study)
    progress = console.TrialProgress(
        total=spec.budget.trials,
        done=done,
        study_name=study_name,
        enabled=show_progress,
        best=cv_loss(best) if best is not None else math.inf,
    )
    status = "FAILED"  # until the loop ends normally
    final_params: dict[int, torch.Tensor] = {}  # trials trained here: no retraining for the report
    clock = TrainingClock()
    with GracefulStop() as stop:
        try:
            if remaining:
                run_trials(
                    study,
                    spec,
                    data,
                    tracker,
                    on_trial_end=progress,
                    stop=stop,
                    final_params=final_params,
                    clock=clock,
                )
            status = end_status(study, spec.budget.trials, stopped=stop.requested is not None)
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            progress.close()
            with stop.shielded():
                reap_runs(study, tracker)
                report = finish_parent(
                    tracker, study, status, spec=spec, data=data, final_params=final_params
                )
    ran = counted_trials(study) - done
    seconds = time.perf_counter() - started
    if not show_progress:  # a worker of a launcher, which prints the summary itself
        say(f"worker done: {ran} trial(s) in {seconds:.1f} s.")
    elif stop.requested:
        say(
            f"\nStopped by {stop.requested}: {counted_trials(study)}/{spec.budget.trials} trials "
            f"done, every finished trial is saved. Resume with the same command, or with\n"
            f"  sweep worker --study {study_name} --storage {storage_url}"
        )
    else:
        print_summary(study, report, ran=ran, seconds=seconds, training_seconds=clock.seconds)
    return SweepOutcome(
        study_name=study_name,
        storage_url=storage_url,
        tracking_uri=tracking_uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=tracker.parent_run_id or "",
        trials_run=ran,
        counted_trials=counted_trials(study),
        budget=spec.budget.trials,
        seconds=seconds,
        training_seconds=clock.seconds,
    )


def end_status(study: optuna.Study, budget: int, *, stopped: bool) -> str:
    """The parent run's status when this worker leaves: FINISHED once the budget is met; RUNNING
    while other workers still run trials; KILLED when the study is left incomplete."""
    if counted_trials(study) >= budget:
        return "FINISHED"
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) and not stopped:
        return "RUNNING"
    return "KILLED"


def print_summary(
    study: optuna.Study,
    report: StudyReport,
    *,
    ran: int,
    seconds: float,
    training_seconds: float | None = None,
) -> None:
    """The trials table, the per-batch-size table and the timing; ``training_seconds`` (time in
    the engine) is known when this process trained every trial."""
    trials = study.get_trials(deepcopy=False)
    say("\n" + console.trials_table(trials))
    say("\nPer batch size:\n" + console.batch_size_table(report.rows, report.choice))
    if report.noise is not None:
        say(console.noise_line(report.noise))
    if report.pareto:
        say("\n" + console.pareto_table(report.pareto))
    split = (
        ""
        if training_seconds is None
        else f": training {training_seconds:.2f} s, the rest (Optuna, MLflow, report) "
        f"{seconds - training_seconds:.2f} s"
    )
    say(
        f"\n{ran} trial(s) in {seconds:.1f} s{split}.\n"
        f"Browse: make ui   Export: sweep best --study {study.study_name}"
    )


def say(message: str) -> None:
    print(message, file=sys.stdout, flush=True)
