"""What a worker leaves in the study's parent MLflow run when it ends: the batch-size report
(:mod:`sweep.study_report`), and the run's status."""

from __future__ import annotations

import optuna

from search_spaces import SweepSpec
from sweep.study_report import build_report, log_report
from sweep.tracking import Tracker
from trainers import FoldData


def finish_parent(
    tracker: Tracker,
    study: optuna.Study,
    status: str,
    *,
    spec: SweepSpec,
    data: FoldData | None,
    final_params: dict | None = None,
):
    """Write the report into the parent run and set its status; returns the report.

    With status RUNNING (other workers go on) the noise scale is left to the last worker.
    """
    # No drain first: the report reads Optuna, and the writer sends the last trials' MLflow writes
    # while it is built; log_report drains before it uploads the files.
    report = build_report(
        study, spec=spec, data=None if status == "RUNNING" else data, final_params=final_params
    )
    log_report(tracker, study, report)
    if status == "RUNNING":
        tracker.drain()  # the last worker to leave ends the run
    else:
        tracker.end_parent(status)
    return report
