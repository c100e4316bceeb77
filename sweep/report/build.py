"""The whole batch-size report of a study, built from its trials and a noise-scale measurement:
the table, the chosen batch size, the recommended trial, the critical batch size and, for a
multi-objective study, the Pareto front; and what of it goes to the study's tracking run.

Pure: no training and no tracking store here. :mod:`sweep.report.files` writes a report out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial

from sweep.best_config_data import ARTIFACT_FILE, BestConfig
from sweep.report.export import best_config_from_trial
from sweep.report.rows import (
    BatchSizeChoice,
    BatchSizeRow,
    as_metrics,
    batch_size_rows,
    choose_batch_size,
)
from sweep.report.selection import recommended_trial
from sweep.report.snapshot import StudySnapshot
from sweep.study.objectives import cv_loss, pareto_front
from sweep.study.trial_record import run_id_of

if TYPE_CHECKING:  # the measurement is made by the caller; the report only reads it
    from trainers.noise_scale import NoiseScale


@dataclass(frozen=True)
class StudyReport:
    snapshot: StudySnapshot
    rows: list[BatchSizeRow]
    choice: BatchSizeChoice | None
    recommended: FrozenTrial | None  # the best trial at the chosen batch size
    noise: NoiseScale | None  # measured on the recommended config
    noise_note: str = ""  # why there is no noise scale, when there is none
    pareto: list[dict] = field(default_factory=list)  # multi-objective: loss vs time trade-off
    best: BestConfig | None = None  # the recommended trial as an exportable config

    @property
    def critical_batch_size(self) -> float:
        return self.noise.b_simple if self.noise is not None else math.nan

    def as_dict(self) -> dict:
        return {
            "rows": [row.as_dict() for row in self.rows],
            "best_batch_size": self.choice.batch_size if self.choice else None,
            "rule": self.choice.rule if self.choice else None,
            "argmin_batch_size": self.choice.argmin_batch_size if self.choice else None,
            "one_se_threshold": self.choice.threshold if self.choice else None,
            "critical_batch_size": None if self.noise is None else _finite(self.noise.b_simple),
            "gradient_noise": None
            if self.noise is None
            else {
                "b_simple": _finite(self.noise.b_simple),
                "gradient_sq_norm": self.noise.gradient_sq_norm,
                "trace_covariance": self.noise.trace_covariance,
                "small_batch": self.noise.small_batch,
                "big_batch": self.noise.big_batch,
                "draws": self.noise.draws,
            },
            "noise_note": self.noise_note,
            "pareto_front": self.pareto,
        }

    def json_files(self) -> dict[str, dict]:
        """The report's JSON files: file name -> payload."""
        files: dict[str, dict] = {"batch_size_report.json": self.as_dict()}
        if self.pareto:
            files["pareto_front.json"] = {"trials": self.pareto}
        if self.best is not None:
            files[ARTIFACT_FILE] = self.best.to_dict()
        return files

    def tracking_values(self) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        """``(metrics, params, tags)`` for the study's tracking run.

        The best config's params are written once the budget is met (params are write-once);
        its tags follow the current best at every report.
        """
        snapshot = self.snapshot
        metrics = {**as_metrics(self.rows), "counted_trials": float(snapshot.counted)}
        params: dict[str, Any] = {}
        tags: dict[str, Any] = {}
        if self.pareto:
            tags["pareto_batch_sizes"] = ",".join(
                dict.fromkeys(p["batch_size"] for p in self.pareto)
            )
        if self.noise is not None and math.isfinite(self.noise.b_simple):
            metrics["critical_batch_size"] = self.noise.b_simple
        if self.best is not None and self.recommended is not None and self.choice is not None:
            trial = self.recommended
            if snapshot.counted >= snapshot.budget:
                params.update(
                    best_batch_size=self.best.batch_size,
                    best_lr=self.best.lr,
                    best_optimizer=self.best.optimizer,
                )
            tags.update(
                best_batch_size=self.best.batch_size,
                best_batch_size_rule=self.choice.rule,
                argmin_batch_size=self.choice.argmin_batch_size,
                best_trial_number=trial.number,
                best_trial_run_id=run_id_of(trial),
            )
            metrics.update(best_cv_val_loss=cv_loss(trial), best_trial_number=float(trial.number))
        return metrics, params, tags


def build_report(
    snapshot: StudySnapshot, *, noise: NoiseScale | None = None, noise_note: str = ""
) -> StudyReport:
    """The table, the choice and the recommended trial of ``snapshot``'s trials, with the noise
    scale the caller measured on the recommended config (or why it did not)."""
    rows = batch_size_rows(snapshot.trials)
    recommended = recommended_trial(snapshot.trials)
    pareto = pareto_front(snapshot.trials, snapshot.n_objectives)
    if recommended is None:
        note = noise_note or "no completed trial"
        return StudyReport(snapshot, rows, choose_batch_size(rows), None, None, note, pareto)
    trial, choice = recommended
    best = best_config_from_trial(snapshot, trial, rule=choice.rule)
    return StudyReport(snapshot, rows, choice, trial, noise, noise_note, pareto, best)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
