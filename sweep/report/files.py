"""A report written out: the table as CSV, its JSON files and its figures, each written once into
one folder, then handed to the tracking sink, which uploads the folder to the study's run in one
call. A sink in the tracking process (``draws_figures``) draws the figures there, where
matplotlib is loaded. ``sweep report`` also copies the folder to its output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from sweep.guards.safe_files import copy_into
from sweep.provenance.description import NOTE_TAG, study_description
from sweep.report.build import StudyReport
from sweep.report.rows import rows_as_csv
from sweep.tracking.sink import TrackingSink

CSV_FILE = "batch_size_report.csv"
FIGURE_DPI = 100  # matplotlib's default: what MlflowClient.log_figure wrote


def write_report(report: StudyReport, sink: TrackingSink | None, folder: Path) -> list[str]:
    """Write every file of ``report`` into ``folder``, then log the report's values and the
    folder to ``sink`` (when there is one); returns the file names."""
    remote = sink is not None and getattr(sink, "draws_figures", False)
    names = write_report_files(folder, report, figures=not remote)
    if sink is not None:
        metrics, params, tags = report.tracking_values()
        tags = {**tags, NOTE_TAG: study_description(report)}  # the run's description in the UI
        values = {"metrics": metrics, "params": params, "tags": tags, "folder": folder}
        if remote:
            names += sink.log_report(**values, report=report)  # type: ignore[call-arg]
        else:
            sink.log_report(**values)
    return names


def write_report_files(folder: Path, report: StudyReport, *, figures: bool = True) -> list[str]:
    """The CSV table, the JSON files and (unless ``figures`` is False) the figures, into
    ``folder``; returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CSV_FILE).write_text(rows_as_csv(report.rows))
    dicts = report.json_files()
    for name, payload in dicts.items():  # as MlflowClient.log_dict writes JSON
        (folder / name).write_text(json.dumps(payload, indent=2, default=str))
    drawn = write_figures(folder, report) if figures else []
    return [CSV_FILE, *dicts, *drawn]


def write_figures(folder: Path, report: StudyReport, *, part: int | None = None) -> list[str]:
    """The report's figures (``part``: see :func:`~sweep.report.figures.report_figures`) as PNG
    files in ``folder``; returns their names."""
    from sweep.report.figures import close_all, report_figures  # matplotlib: only to draw

    figures = report_figures(
        report.snapshot, report.rows, report.choice, report.importances, part=part
    )
    try:
        for name, figure in figures.items():
            figure.savefig(folder / name, dpi=FIGURE_DPI)
    finally:
        close_all(figures)
    return list(figures)


def copy_files(source: Path, names: list[str], destination: Path) -> None:
    """Copy each file into ``destination``, never through a symlink planted there."""
    for name in names:
        copy_into(source / name, destination, name)
