"""The whole batch-size report of a study, and its place in the parent MLflow run: the table
(CSV and JSON), its key figures as metrics, the chosen batch size, the critical batch size from the
gradient noise scale, and the figures."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial

from search_spaces import SweepSpec
from sweep.batch_size_report import (
    BatchSizeChoice,
    BatchSizeRow,
    as_metrics,
    batch_size_rows,
    choose_batch_size,
)
from sweep.best_config import ARTIFACT_FILE, BestConfig
from sweep.export import best_config_from_trial
from sweep.objectives import cv_loss, pareto_front
from sweep.report_files import write_report_files
from sweep.selection import recommended_trial
from sweep.study import BUDGET_ATTR, counted_trials
from sweep.tracking import RunBuffer, Tracker
from sweep.trial_params import train_config
from sweep.trial_record import run_id_of
from trainers import FoldData, train_folds
from trainers.noise_scale import NoiseScale, fold_noise_scale


@dataclass(frozen=True)
class StudyReport:
    rows: list[BatchSizeRow]
    choice: BatchSizeChoice | None
    recommended: FrozenTrial | None  # the best trial at the chosen batch size
    noise: NoiseScale | None  # measured on the recommended config, retrained once
    noise_note: str = ""  # why there is no noise scale, when there is none
    pareto: list[dict] = field(default_factory=list)  # multi-objective: loss vs time trade-off

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


def build_report(
    study: optuna.Study,
    *,
    spec: SweepSpec,
    data: FoldData | None,
    final_params: Mapping[int, torch.Tensor] | None = None,
) -> StudyReport:
    """The table and the choice; with ``data``, also the gradient noise scale of the best config,
    at its fold-0 weights after training (from ``final_params`` by trial number, if this process
    trained it; else it is trained again)."""
    rows = batch_size_rows(study.get_trials(deepcopy=False))
    recommended = recommended_trial(study)
    pareto = pareto_front(study)
    if recommended is None:
        return StudyReport(rows, choose_batch_size(rows), None, None, "no completed trial", pareto)
    trial, choice = recommended
    if data is None:
        return StudyReport(rows, choice, trial, None, "data not loaded for this report", pareto)
    config = train_config(trial.params, spec, full_batch_size=max(data.train_sizes))
    try:
        params = (final_params or {}).get(trial.number)
        if params is None:  # trained in another process: train it again, once
            params = train_folds(data, config).final_params[0]
        noise = fold_noise_scale(data, config.model, params, seed=spec.cv.seed)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return StudyReport(
            rows, choice, trial, None, "out of device memory retraining the best config", pareto
        )
    return StudyReport(rows, choice, trial, noise, "", pareto)


def log_report(
    tracker: Tracker, study: optuna.Study, report: StudyReport, *, files: Path | None = None
) -> None:
    """Write the report into the study's parent run: its values in one batch, then its files
    (:mod:`sweep.report_files`) in one upload. ``files``: a folder that already holds them; else
    they are written to a temporary one, while the writer thread sends the values."""
    buffer = tracker.parent_buffer()
    buffer.metric_dict(as_metrics(report.rows))
    buffer.metric("counted_trials", counted_trials(study))
    if report.pareto:
        buffer.tag_dict(
            {"pareto_batch_sizes": ",".join(dict.fromkeys(p["batch_size"] for p in report.pareto))}
        )
    if report.noise is not None and math.isfinite(report.noise.b_simple):
        buffer.metric("critical_batch_size", report.noise.b_simple)
    best = best_config_of(study, report)
    if best is not None:
        trial = report.recommended
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
                "best_batch_size_rule": report.choice.rule,
                "argmin_batch_size": report.choice.argmin_batch_size,
                "best_trial_number": trial.number,
                "best_trial_run_id": run_id_of(trial),
            }
        )
        buffer.metric_dict({"best_cv_val_loss": cv_loss(trial), "best_trial_number": trial.number})
    _drop_params_already_logged(buffer)
    buffer.flush()
    if files is not None:
        tracker.log_parent_artifacts(files)
        return
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as staging:
        write_report_files(Path(staging), study, report, report_dicts(report, best))
        tracker.log_parent_artifacts(Path(staging))


def best_config_of(study: optuna.Study, report: StudyReport) -> BestConfig | None:
    """The recommended trial as an exportable config (``best_config.json``), if there is one."""
    if report.recommended is None or report.choice is None:
        return None
    return best_config_from_trial(study, report.recommended, rule=report.choice.rule)


def report_dicts(report: StudyReport, best: BestConfig | None) -> dict[str, dict]:
    """The report's JSON files: file name -> payload."""
    dicts: dict[str, dict] = {"batch_size_report.json": report.as_dict()}
    if report.pareto:
        dicts["pareto_front.json"] = {"trials": report.pareto}
    if best is not None:
        dicts[ARTIFACT_FILE] = best.to_dict()
    return dicts


def _drop_params_already_logged(buffer: RunBuffer) -> None:
    """MLflow params are write-once. A study whose budget is raised later may find a new best:
    its params keep the first value, while the tags and best_config.json follow the current best."""
    if not buffer.params:
        return
    existing = buffer.client.get_run(buffer.run_id).data.params
    buffer.params = [
        p for p in buffer.params if p.key not in existing or existing[p.key] == p.value
    ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
