"""The end of a sweep, in one place for a single process and for the launcher of many: reap the
runs dead workers left, measure the gradient noise scale of the recommended config, build the
report, write it to the study's tracking run and set that run's status."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from search_spaces import SweepSpec
from sweep.outcome import RunPlan, SweepOutcome
from sweep.report.build import StudyReport, build_report
from sweep.report.files import write_report
from sweep.report.selection import recommended_trial
from sweep.report.snapshot import StudySnapshot, snapshot_of
from sweep.study.attrs import BEST_BATCH_SIZE_ATTR, RECOMMENDED_TRIAL_ATTR, SELECTION_RULE_ATTR
from sweep.study.resume import counted_trials
from sweep.study.trial_params import train_config
from sweep.tracking.sink import TrackingSink
from trainers import train_folds
from trainers.noise_scale import NoiseScale, fold_noise_scale
from trainers.problem import TrainingProblem


def end_status(study: optuna.Study, budget: int, *, stopped: bool) -> str:
    """The study run's status when this worker leaves: FINISHED once the budget is met; RUNNING
    while other workers still run trials; KILLED when the study is left incomplete."""
    if counted_trials(study) >= budget:
        return "FINISHED"
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) and not stopped:
        return "RUNNING"
    return "KILLED"


def reap(study: optuna.Study, sink: TrackingSink) -> int:
    """End the tracking runs of trials that are over but whose worker died."""

    def finished() -> dict[int, str]:
        return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}

    return sink.reap(finished)


def close_study(
    study: optuna.Study,
    sink: TrackingSink,
    status: str,
    *,
    spec: SweepSpec,
    problem: TrainingProblem | None,
    final_params: Mapping[int, torch.Tensor] | None = None,
) -> StudyReport:
    """Reap, report and set the study run's status; returns the report.

    With status RUNNING (other workers go on) the noise scale is left to the last worker, and
    the run is left RUNNING for it to end.
    """
    reap(study, sink)
    # No drain first: the report reads Optuna while the writer sends the last trials' writes;
    # the sink drains before it uploads the files.
    snapshot = snapshot_of(study)
    noise, note = (
        (None, "left to the last worker")
        if status == "RUNNING"
        else measure_noise(snapshot, spec=spec, problem=problem, final_params=final_params)
    )
    report = build_report(snapshot, noise=noise, noise_note=note)
    record_choice(study, report)
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as staging:
        write_report(report, sink, Path(staging))
    if status == "RUNNING":
        sink.drain()
    else:
        sink.end_study(status)
    return report


def record_choice(study: optuna.Study, report: StudyReport) -> None:
    """The recommended trial and batch size as the study's user attributes, where Optuna's own
    tools (optuna-dashboard) show them beside their lowest-loss "best trial"."""
    if report.recommended is None or report.choice is None:
        return
    choice = {
        RECOMMENDED_TRIAL_ATTR: report.recommended.number,
        BEST_BATCH_SIZE_ATTR: report.choice.batch_size,
        SELECTION_RULE_ATTR: report.choice.rule,
    }
    stored = study.user_attrs
    for key, value in choice.items():
        if stored.get(key) != value:
            study.set_user_attr(key, value)


def measure_noise(
    snapshot: StudySnapshot,
    *,
    spec: SweepSpec,
    problem: TrainingProblem | None,
    final_params: Mapping[int, torch.Tensor] | None = None,
) -> tuple[NoiseScale | None, str]:
    """The gradient noise scale of the recommended config at its fold-0 weights after training
    (from ``final_params`` by trial number, if this process trained it; else trained again
    once), or None and why not."""
    recommended = recommended_trial(snapshot.trials)
    if recommended is None:
        return None, "no completed trial"
    if problem is None:
        return None, "data not loaded for this report"
    if not problem.fast:
        return (
            None,
            "the gradient noise scale is measured for the built-in MLP only, not yet for your own model",
        )
    data = problem.data
    trial, _choice = recommended
    config = train_config(trial.params, spec, full_batch_size=max(data.train_sizes))
    try:
        params = (final_params or {}).get(trial.number)
        if params is None:  # trained in another process: train it again, once
            params = train_folds(data, config).final_params[0]
        return fold_noise_scale(data, config.model, params, seed=spec.cv.seed), ""
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None, "out of device memory retraining the best config"


def sweep_outcome(
    plan: RunPlan, sink: TrackingSink, report: StudyReport, **measured: Any
) -> SweepOutcome:
    """What a sweep did, for its caller: ``measured`` holds ``trials_run`` and the timing or the
    workers' exit codes."""
    return SweepOutcome(
        study_name=plan.study_name,
        storage_url=plan.storage_url,
        tracking_uri=plan.tracking_uri,
        experiment_id=sink.experiment_id,
        parent_run_id=sink.parent_run_id or "",
        counted_trials=report.snapshot.counted,
        budget=plan.spec.budget.trials,
        report=report,
        **measured,
    )
