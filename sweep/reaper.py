"""Leave no MLflow run RUNNING for a trial that is over.

A worker killed with kill -9 leaves its trial RUNNING in Optuna (until the heartbeat says it is
dead, when Optuna fails it) and its run RUNNING in MLflow. The reaper runs when a worker starts
and when it ends: every RUNNING run of the study's experiment whose trial has finished gets the
trial's state (COMPLETE -> FINISHED, PRUNED -> KILLED, FAIL -> FAILED).

A run names its trial by its ``optuna.trial_number`` and ``mlflow.parentRunId`` tags (the study's
parent run), set when the run is created, so a trial killed before its end is found without
anything written to Optuna. The runs this worker
created are left to it: it ends every one of them itself (through its writer, which may still
hold the writes), so the reaper neither waits for the writer nor reads the trials when only
those and the parent run are RUNNING.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sweep.tracking import PARENT_TAG, Tracker
from sweep.trial_record import TRIAL_NUMBER_TAG

RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


def reap_runs(study: optuna.Study, tracker: Tracker) -> int:
    """Terminate the MLflow runs of finished trials that are still RUNNING; returns how many."""
    running = tracker.client.search_runs(
        [tracker.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    mine = tracker.trial_run_ids | {tracker.parent_run_id}
    others = [run for run in running if run.info.run_id not in mine]
    if not others:
        return 0
    trials = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    reaped = 0
    for run in others:
        tags = run.data.tags
        if tags.get(PARENT_TAG) != tracker.parent_run_id:  # not a trial run of this study's
            continue
        number = tags.get(TRIAL_NUMBER_TAG, "")
        trial = trials.get(int(number)) if number.isdigit() else None
        if trial is not None and trial.state in RUN_STATUS:
            tracker.client.set_tag(run.info.run_id, "reaped", f"trial ended {trial.state.name}")
            tracker.client.set_terminated(run.info.run_id, status=RUN_STATUS[trial.state])
            reaped += 1
    return reaped
