"""What a trial leaves in the Optuna study besides its params and value: one user attribute.

One dict written once when the trial ends costs one storage write, where an attribute per figure
would cost a dozen. Readers (tables, plots, export) go through :func:`record_of`.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

RECORD_ATTR = "record"
MLFLOW_RUN_ATTR = "mlflow_run_id"  # written at the start, so a dead trial's run can be found


def record_of(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's record: curves, CV summary, timing and (if pruned) the reason; {} if none."""
    return trial.user_attrs.get(RECORD_ATTR, {})


def val_loss_curve(trial: FrozenTrial) -> list[float]:
    """CV-mean validation loss per epoch, from the record or Optuna's intermediate values."""
    curve = record_of(trial).get("val_loss_curve")
    if curve:
        return list(curve)
    return [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
