"""Leave no MLflow run RUNNING for a trial that is over.

A worker killed with kill -9 leaves its trial RUNNING in Optuna (until the heartbeat says it is
dead, when Optuna fails it) and its run RUNNING in MLflow. The reaper runs when a worker starts
and when it ends: every RUNNING run of the study's experiment whose trial has finished gets the
trial's state (COMPLETE -> FINISHED, PRUNED -> KILLED, FAIL -> FAILED).
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sweep.tracking import Tracker
from sweep.trial_record import MLFLOW_RUN_ATTR

RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


def reap_runs(study: optuna.Study, tracker: Tracker) -> int:
    """Terminate the MLflow runs of finished trials that are still RUNNING; returns how many."""
    tracker.drain()
    running = tracker.client.search_runs(
        [tracker.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    if not running:
        return 0
    state_of_run = {
        trial.user_attrs[MLFLOW_RUN_ATTR]: trial.state
        for trial in study.get_trials(deepcopy=False)
        if MLFLOW_RUN_ATTR in trial.user_attrs
    }
    reaped = 0
    for run in running:
        state = state_of_run.get(run.info.run_id)
        if state in RUN_STATUS:
            tracker.client.set_tag(run.info.run_id, "reaped", f"trial ended {state.name}")
            tracker.client.set_terminated(run.info.run_id, status=RUN_STATUS[state])
            reaped += 1
    return reaped
