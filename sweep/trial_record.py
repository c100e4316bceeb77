"""What a trial leaves in the Optuna study besides its params and value: one user attribute.

One dict written once when the trial ends costs one storage write, where an attribute per figure
would cost a dozen. Readers (tables, plots, export) go through :func:`record_of`. The record also
names the trial's MLflow run (:func:`run_id_of`); a trial that never ended (its worker was
killed) is found in MLflow by its run's ``optuna.trial_number`` tag instead.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

RECORD_ATTR = "record"
MLFLOW_RUN_ATTR = "mlflow_run_id"  # a record key; a user attribute of trials from before
TRIAL_NUMBER_TAG = "optuna.trial_number"  # on every trial's MLflow run, from its creation


def record_of(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's record: curves, CV summary, timing and (if pruned) the reason; {} if none."""
    return trial.user_attrs.get(RECORD_ATTR, {})


def val_loss_curve(trial: FrozenTrial) -> list[float]:
    """CV-mean validation loss per epoch, from the record or Optuna's intermediate values."""
    curve = record_of(trial).get("val_loss_curve")
    if curve:
        return list(curve)
    return [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]


def run_id_of(trial: FrozenTrial) -> str:
    """The trial's MLflow run id, "" when unknown (a trial whose worker died before its end)."""
    return record_of(trial).get(MLFLOW_RUN_ATTR) or trial.user_attrs.get(MLFLOW_RUN_ATTR, "")
