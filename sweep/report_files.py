"""The report's files, each written once into one folder: the table as CSV, the dicts as JSON and
the figures as PNG. The sweep uploads that folder to the parent MLflow run in one
``log_artifacts`` call; ``sweep report`` also copies it to its output folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import optuna

from sweep.batch_size_report import rows_as_csv
from sweep.report_figures import close_all, report_figures

CSV_FILE = "batch_size_report.csv"
FIGURE_DPI = 100  # matplotlib's default: what MlflowClient.log_figure wrote


def write_report_files(
    folder: Path, study: optuna.Study, report, dicts: Mapping[str, dict]
) -> list[str]:
    """Write the CSV table, ``dicts`` (file name -> payload) and the figures into ``folder``;
    returns the file names. ``report`` is a :class:`~sweep.study_report.StudyReport`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CSV_FILE).write_text(rows_as_csv(report.rows))
    for name, payload in dicts.items():  # as MlflowClient.log_dict writes JSON
        (folder / name).write_text(json.dumps(payload, indent=2, default=str))
    figures = report_figures(study, report.rows, report.choice)
    try:
        for name, figure in figures.items():
            figure.savefig(folder / name, dpi=FIGURE_DPI)
    finally:
        close_all(figures)
    return [CSV_FILE, *dicts, *figures]


def copy_files(source: Path, names: list[str], destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(source / name, destination / name)
