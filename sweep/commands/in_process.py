"""Run a validated sweep in this process: open (or create) the study and its tracking run, reap
what dead workers left, run trials until the budget is met or a signal asks to stop, and close
the study with its report. ``sweep run`` and ``sweep worker`` both end up here."""

from __future__ import annotations

import math
import time

from sweep.commands.finish import close_study, end_status, reap, sweep_outcome
from sweep.commands.gc_freeze import frozen_heap
from sweep.commands.stores import open_stores
from sweep.commands.terminal import TrialProgress, print_summary, say
from sweep.graceful_stop import GracefulStop
from sweep.outcome import RunPlan, SweepOutcome
from sweep.perf.fast_exit import flush_before_exit
from sweep.perf.phases import PHASES, TimedSink
from sweep.provenance.redact import redact_url
from sweep.study.heartbeats import fail_stale_trials
from sweep.study.objectives import argmin_trial, cv_loss
from sweep.study.resume import counted_trials
from sweep.study.sqlite_tuning import tune_sqlite_connections
from sweep.study.trial_loop import TrainingClock, run_trials
from trainers.data import Dataset


@frozen_heap()
def run_in_process(plan: RunPlan, *, show_progress: bool = True) -> SweepOutcome:
    started = time.perf_counter()  # the sweep's own work (stores, Optuna, MLflow, report) too
    spec = plan.spec
    tune_sqlite_connections()
    with PHASES.phase("stores"):
        study, sink = open_stores(plan)
        flush_before_exit(sink.drain)
        if PHASES.verbose:
            sink = TimedSink(sink, PHASES)
        fail_stale_trials(study)  # before reaping: the dead workers' trials must be FAILED first
        reap(study, sink)
    done = counted_trials(study)
    remaining = max(0, spec.budget.trials - done)
    dataset = plan.dataset
    say(
        f"{'Resuming' if plan.resuming else 'Created'} study {plan.study_name!r}: "
        f"{done}/{spec.budget.trials} trials done, {remaining} to run on {plan.device}.\n"
        f"  data: {dataset.name} ({dataset.n_samples} rows, {_sample_shape(dataset)}, "
        f"{dataset.task}), {len(plan.folds)}-fold CV, {spec.training.epochs} epochs\n"
        f"  optuna storage: {redact_url(plan.storage_url)}\n"
        f"  mlflow tracking: {redact_url(plan.tracking_uri)} (experiment {sink.experiment_id})"
    )
    best = argmin_trial(study.get_trials(deepcopy=False))
    progress = TrialProgress(
        total=spec.budget.trials,
        done=done,
        study_name=plan.study_name,
        enabled=show_progress,
        best=cv_loss(best) if best is not None else math.inf,
    )
    status = "FAILED"  # until the loop ends normally
    clock = TrainingClock()
    with GracefulStop() as stop:
        try:
            if remaining:
                problem = plan.inputs.problem()  # the data on the device: only with trials to run
                with PHASES.phase("Optuna"):
                    run_trials(
                        study,
                        spec,
                        problem,
                        sink,
                        on_trial_end=progress,
                        stop=stop,
                        clock=clock,
                    )
                PHASES.add("Optuna", -clock.seconds)  # the engine's own time is training's
                PHASES.add("training", clock.seconds)
            status = end_status(study, spec.budget.trials, stopped=stop.requested is not None)
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            progress.close()
            with stop.shielded(), PHASES.phase("report"):
                report = close_study(study, sink, status)
    counted = report.snapshot.counted  # the study as the report read it, at the end
    ran = counted - done
    seconds = time.perf_counter() - started
    if not show_progress:  # a worker of a launcher, which prints the summary itself
        say(f"worker done: {ran} trial(s) in {seconds:.1f} s.")
    elif stop.requested:
        say(
            f"\nStopped by {stop.requested}: {counted}/{spec.budget.trials} trials "
            f"done, every finished trial is saved. Resume with the same command, or with\n"
            f"  sweep worker --study {plan.study_name} --storage {redact_url(plan.storage_url)}"
        )
    else:
        print_summary(report, ran=ran, seconds=seconds, training_seconds=clock.seconds)
    return sweep_outcome(
        plan, sink, report, trials_run=ran, seconds=seconds, training_seconds=clock.seconds
    )


def _sample_shape(dataset: Dataset) -> str:
    shape = dataset.X.shape[1:]
    dropped = (
        f", {dataset.dropped_rows} rows with empty cells dropped" if dataset.dropped_rows else ""
    )
    if len(shape) == 1:
        return f"{shape[0]} features{dropped}"
    return "samples of shape " + "x".join(map(str, shape)) + dropped
