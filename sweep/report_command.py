"""``sweep report --study NAME``: the batch-size report of a stored study, printed, written to a
folder, and logged to the study's parent MLflow run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import optuna

from sweep import console
from sweep.errors import UsageError
from sweep.report_files import CSV_FILE, copy_files, write_report_files
from sweep.runner import check_storage_url, check_tracking_uri, load_data, quiet_library_logs
from sweep.study import load_spec, make_storage
from sweep.study_report import StudyReport, best_config_of, build_report, log_report, report_dicts
from sweep.tracking import PARENT_RUN_ATTR, Tracker
from trainers import prepare_folds


def run_report(
    study_name: str, *, storage_url: str, tracking_uri: str, output: Path | None
) -> StudyReport:
    check_storage_url(storage_url)
    check_tracking_uri(tracking_uri)
    spec = load_spec(storage_url, study_name)
    dataset, folds, device = load_data(spec)
    quiet_library_logs()
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    report = build_report(study, spec=spec, data=prepare_folds(dataset, folds, device=device))
    if not report.rows:
        raise UsageError(f"--study {study_name!r} has no finished trial yet; nothing to report.")
    print(console.batch_size_table(report.rows, report.choice))
    if report.noise is not None:
        print(console.noise_line(report.noise))
    elif report.noise_note:
        print(f"critical batch size: not measured ({report.noise_note})")
    if report.pareto:
        print(console.pareto_table(report.pareto))
    folder = output or Path("mlruns") / "reports" / study_name
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as staging:
        # Each figure drawn and saved once: copied to the folder, uploaded from here.
        staged = Path(staging)
        names = write_report_files(
            staged, study, report, report_dicts(report, best_config_of(study, report))
        )
        _write_folder(folder, report, staged, [n for n in names if n.endswith(".png")])
        print(f"wrote {folder}/ (batch_size_report.csv, .json and the figures)")
        if parent_run_id:
            tracker = Tracker(tracking_uri, study_name)
            tracker.parent_run_id = parent_run_id
            log_report(tracker, study, report, files=staged)
            tracker.drain()
            print(f"logged to MLflow run {parent_run_id} ({tracking_uri})")
    return report


def _write_folder(folder: Path, report: StudyReport, staged: Path, figures: list[str]) -> None:
    copy_files(staged, [CSV_FILE, *figures], folder)
    (folder / "batch_size_report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
