"""What a trial leaves in the Optuna study besides its params and value: one typed record.

The record is one user attribute, written once when the trial ends: one storage write, where an
attribute per figure would cost a dozen. :class:`TrialRecord` is the only code that writes or reads
it, so a misspelt field is an error, not a silent NaN. The record names the trial's MLflow run; a
trial that never ended (its worker was killed) is found in MLflow by its run's
``optuna.trial_number`` tag instead.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

RECORD_ATTR = "record"
MLFLOW_RUN_ATTR = "mlflow_run_id"  # a record field; a user attribute of trials from before
TRIAL_NUMBER_TAG = "optuna.trial_number"  # on every trial's tracking run, from its creation
NAN = math.nan


@dataclass
class TrialRecord:
    """A trial's curves, CV summary, timing and (when it was stopped) the reason.

    Fields a trial did not reach (a pruned trial has no CV summary) keep their defaults: NaN for
    figures, empty curves, None for the reasons.
    """

    metric_name: str = ""  # "r2", "accuracy", or the space's metric
    effective_lr: float = NAN  # the LR trained with (after lr_scaling, if any)
    mlflow_run_id: str = ""
    # per epoch, CV means over folds
    train_loss_curve: list[float] = field(default_factory=list)
    val_loss_curve: list[float] = field(default_factory=list)
    val_metric_curve: list[float] = field(default_factory=list)
    epoch_seconds: float = NAN  # median over epochs of the trial's share of its stack's epoch
    wall_seconds: float = NAN
    # the CV summary, once every epoch ran
    cv_val_loss: float = NAN
    cv_val_loss_std: float = NAN  # over folds, without Bessel's correction
    cv_metric: float = NAN
    cv_metric_std: float = NAN
    fold_val_loss: list[float] = field(default_factory=list)
    updates_per_epoch: float = NAN
    resolved_batch_size: float = NAN
    chunks_per_step: int = 1
    stack_size: int = 1
    n_train_samples: float = NAN
    peak_memory_bytes: float = NAN  # of the whole stack
    memory_kind: str = "n/a"  # "cuda peak allocated" or "estimate"
    prune_reason: str | None = None
    # the gradient noise scale of fold 0, measured when the trial ended as the best of its batch
    # size (the only trials a report can recommend): one dict per stage ("early", "end")
    gradient_noise: list[dict[str, Any]] = field(default_factory=list)
    gradient_noise_note: str = ""  # why a completed trial has no measurement
    engine: str = "stacked"  # or "sequential": one model at a time, when vmap cannot stack it

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        """The trial's record; an empty one for a trial that never ended (or from before)."""
        stored = trial.user_attrs.get(RECORD_ATTR) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{key: value for key, value in stored.items() if key in known})
        if not record.mlflow_run_id:  # trials from before the id moved into the record
            record.mlflow_run_id = trial.user_attrs.get(MLFLOW_RUN_ATTR, "")
        return record

    def as_attr(self) -> dict[str, Any]:
        """The JSON-able form stored as the trial's ``record`` user attribute."""
        return dataclasses.asdict(self)

    @property
    def memory_per_trial(self) -> float:
        """This trial's share of its stack's peak memory."""
        return self.peak_memory_bytes / max(self.stack_size, 1)


def record_of(trial: FrozenTrial) -> TrialRecord:
    """Shorthand for :meth:`TrialRecord.of`."""
    return TrialRecord.of(trial)


def val_loss_curve(trial: FrozenTrial) -> list[float]:
    """CV-mean validation loss per epoch, from the record or Optuna's intermediate values."""
    curve = record_of(trial).val_loss_curve
    if curve:
        return list(curve)
    return [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]


def run_id_of(trial: FrozenTrial) -> str:
    """The trial's tracking run id, "" when unknown (a trial whose worker died before its end)."""
    return record_of(trial).mlflow_run_id
