"""The whole batch-size report of a study, built from its trials and a noise-scale measurement:
the table, the chosen batch size, the recommended trial, the critical batch size and, for a
multi-objective study, the Pareto front; and what of it goes to the study's tracking run.

Pure: no training and no tracking store here. :mod:`sweep.report.files` writes a report out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

from sweep.best_config_data import ARTIFACT_FILE, BestConfig
from sweep.report.export import best_config_from_trial
from sweep.report.importances import param_importances
from sweep.report.noise import NoiseReading, missing_note, noise_readings, noise_tracking_values
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


@dataclass(frozen=True)
class StudyReport:
    snapshot: StudySnapshot
    rows: list[BatchSizeRow]
    choice: BatchSizeChoice | None
    recommended: FrozenTrial | None  # the best trial at the chosen batch size
    # the recommended trial's gradient noise scale, measured during the sweep: early, then end
    noise: list[NoiseReading] = field(default_factory=list)
    noise_note: str = ""  # why there is no measurement, when there is none
    pareto: list[dict] = field(default_factory=list)  # multi-objective: loss vs time trade-off
    best: BestConfig | None = None  # the recommended trial as an exportable config
    importances: dict[str, float] = field(default_factory=dict)  # parameter -> share of the loss

    @property
    def critical_batch_size(self) -> float | None:
        """The estimate at the end of training; None when not measured or not measurable."""
        end = [reading for reading in self.noise if reading.stage == "end"]
        return end[0].estimate if end else None

    def as_dict(self) -> dict:
        return {
            "rows": [row.as_json() for row in self.rows],
            "best_batch_size": self.choice.batch_size if self.choice else None,
            "rule": self.choice.rule if self.choice else None,
            "argmin_batch_size": self.choice.argmin_batch_size if self.choice else None,
            "one_se_threshold": self.choice.threshold if self.choice else None,
            "critical_batch_size": self.critical_batch_size,
            "gradient_noise": [reading.as_dict() for reading in self.noise],
            "noise_note": self.noise_note,
            "pareto_front": self.pareto,
            "param_importances": self.importances,
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
        noise_metrics, noise_tags = noise_tracking_values(self.noise)
        metrics.update(noise_metrics)
        tags.update(noise_tags)
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


def build_report(snapshot: StudySnapshot) -> StudyReport:
    """The table, the choice and the recommended trial of ``snapshot``'s trials, with the noise
    scale measured on the recommended trial while the sweep ran (never trained again here)."""
    rows = batch_size_rows(snapshot.trials)
    recommended = recommended_trial(snapshot.trials)
    pareto = pareto_front(snapshot.trials, snapshot.n_objectives)
    importances = param_importances(snapshot)
    if recommended is None:
        choice = choose_batch_size(rows)
        return StudyReport(
            snapshot, rows, choice, None, [], "no completed trial", pareto, None, importances
        )
    trial, choice = recommended
    best = best_config_from_trial(snapshot, trial, rule=choice.rule)
    readings = noise_readings(trial)
    note = "" if readings else missing_note(trial)
    return StudyReport(snapshot, rows, choice, trial, readings, note, pareto, best, importances)
