"""The end of a sweep, in one place for a single process and for the launcher of many: reap the
runs dead workers left, build the report (from what the trials stored: nothing is trained here),
log it to the study's tracking run unless the study is unchanged since the last report was logged,
and set that run's status."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sweep.outcome import RunPlan, SweepOutcome
from sweep.report.build import StudyReport, build_report
from sweep.report.snapshot import snapshot_of
from sweep.study.attrs import (
    BEST_BATCH_SIZE_ATTR,
    RECOMMENDED_TRIAL_ATTR,
    REPORT_MARKER_ATTR,
    SELECTION_RULE_ATTR,
)
from sweep.study.resume import counted_trials
from sweep.tracking.sink import TrackingSink


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


def close_study(study: optuna.Study, sink: TrackingSink, status: str) -> StudyReport:
    """Reap, report and set the study run's status; returns the report.

    The report is rebuilt from the study's records, which hold the gradient noise scale measured
    while the trials ran. Its files and figures are drawn and logged only when the study changed
    since the last report was logged (a worker joining a finished study leaves in seconds).
    With status RUNNING (other workers go on) the run is left RUNNING for the last worker to end.
    """
    reap(study, sink)
    # No drain first: the report reads Optuna while the writer sends the last trials' writes;
    # the sink drains before it uploads the files.
    snapshot = snapshot_of(study)
    report = build_report(snapshot)
    record_choice(study, report)
    changed = snapshot.logged_report != snapshot.fingerprint
    if changed:
        # matplotlib (the figures) loads only when there is a report to draw
        from sweep.report.files import write_report

        with tempfile.TemporaryDirectory(prefix="sweep-report-") as staging:
            write_report(report, sink, Path(staging))
    if status == "RUNNING":
        sink.drain()
    else:
        sink.end_study(status)
    if changed:  # every write above is confirmed: the next worker need not log it again
        study.set_user_attr(REPORT_MARKER_ATTR, snapshot.fingerprint)
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
