"""The parent MLflow run's summary of a study: best trial, best batch size, per-batch-size figures,
``best_config.json`` and the learning-curve plot. Rewritten whenever a worker ends."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sweep.batch_size_summary import as_metrics, batch_size_rows
from sweep.best_config import ARTIFACT_FILE
from sweep.export import best_config_from_trial
from sweep.learning_curves_plot import close, learning_curves_figure
from sweep.study import BUDGET_ATTR, counted_trials
from sweep.tracking import RunBuffer, Tracker
from sweep.trial_record import MLFLOW_RUN_ATTR


def finish_parent(tracker: Tracker, study: optuna.Study, status: str) -> None:
    """Best trial, best batch size, per-batch-size figures and the learning-curve plot."""
    tracker.drain()  # every trial's writes first: the summary reads what they wrote
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
    if status == "RUNNING":
        tracker.drain()  # other workers go on; the last one to leave ends the run
    else:
        tracker.end_parent(status)


def _drop_params_already_logged(buffer: RunBuffer) -> None:
    """MLflow params are write-once. A study whose budget is raised later may find a new best:
    its params keep the first value, while the tag and best_config.json follow the current best."""
    existing = buffer.client.get_run(buffer.run_id).data.params
    buffer.params = [
        p for p in buffer.params if p.key not in existing or existing[p.key] == p.value
    ]
