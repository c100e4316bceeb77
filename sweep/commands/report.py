"""``sweep report --study NAME``: the batch-size report of a stored study, printed, written to a
folder, and logged to the study's tracking run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import optuna

from sweep.commands.checks import check_storage_url, check_tracking_uri, quiet_library_logs
from sweep.commands.finish import record_choice
from sweep.commands.terminal import say
from sweep.errors import UsageError
from sweep.guards.safe_files import write_into
from sweep.provenance.redact import redact_url
from sweep.report import console
from sweep.report.build import StudyReport, build_report
from sweep.report.files import CSV_FILE, copy_files, write_report
from sweep.report.noise import noise_lines
from sweep.report.snapshot import snapshot_of
from sweep.study.attrs import PARENT_RUN_ATTR
from sweep.study.resume import load_spec, make_storage
from sweep.tracking.mlflow_sink import MlflowSink


def run_report(
    study_name: str, *, storage_url: str, tracking_uri: str, output: Path | None
) -> StudyReport:
    check_storage_url(storage_url)
    check_tracking_uri(tracking_uri)
    load_spec(storage_url, study_name)  # a missing study or storage: a one-line error, exit 2
    quiet_library_logs()
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    # From what the trials stored, the noise scale included: no data is loaded, nothing trained.
    snapshot = snapshot_of(study)
    report = build_report(snapshot)
    if not report.rows:
        raise UsageError(f"--study {study_name!r} has no finished trial yet; nothing to report.")
    record_choice(study, report)
    print(console.batch_size_table(report.rows, report.choice))
    print("\n".join(noise_lines(report.noise, report.noise_note)))
    if report.pareto:
        print(console.pareto_table(report.pareto))
    folder = output or Path("mlruns") / "reports" / study_name
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    sink = None
    if parent_run_id:
        sink = MlflowSink(tracking_uri, study_name)
        sink.attach_study(parent_run_id)
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as staging:
        # Each figure drawn and saved once: copied to the folder, uploaded from the staging one.
        staged = Path(staging)
        names = write_report(report, sink, staged)
        copy_files(staged, [CSV_FILE, *[n for n in names if n.endswith(".png")]], folder)
        report_json = json.dumps(report.as_dict(), indent=2) + "\n"
        write_into(folder, "batch_size_report.json", report_json)
        say(f"wrote {folder}/ (batch_size_report.csv, .json and the figures)")
    if sink is not None:
        sink.drain()
        say(f"logged to MLflow run {parent_run_id} ({redact_url(tracking_uri)})")
    return report
