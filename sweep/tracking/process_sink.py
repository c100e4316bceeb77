"""A :class:`~sweep.tracking.sink.TrackingSink` whose MLflow sink lives in the tracking process
(:mod:`sweep.tracking.tracking_process`): this process never loads MLflow or matplotlib.

Writes are sent and training goes on; the calls that answer wait. The report's figures are drawn
in the tracking process too (:meth:`ProcessSink.log_report` is given the report).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweep.provenance.dataset_facts import DatasetFacts
from sweep.tracking.sink import NEED_STATES, FinishedTrials, new_handle
from sweep.tracking.tracking_process import TrackingProcess


class ProcessSink:
    """The study's MLflow experiment and runs, written by the tracking process.

    Implements :class:`~sweep.tracking.sink.TrackingSink`; ``draws_figures`` tells
    :func:`sweep.report.files.write_report` to hand it the report rather than draw here.
    """

    draws_figures = True

    def __init__(
        self,
        process: TrackingProcess,
        tracking_uri: str,
        experiment_name: str,
        *,
        dataset: DatasetFacts | None,
        space_file: str | Path | None,
    ) -> None:
        self.process = process
        self.experiment_id: str = process.call(
            "open",
            tracking_uri,
            experiment_name,
            dataset=dataset,
            space_file=None if space_file is None else str(space_file),
        )
        self.parent_run_id: str | None = None

    def open_study(self, *, existing_run_id: str | None, tags: Mapping[str, Any]) -> str:
        self.parent_run_id = self.process.call(
            "open_study", existing_run_id=existing_run_id, tags=dict(tags)
        )
        return self.parent_run_id

    def log_study_params(self, params: Mapping[str, Any]) -> None:
        self.process.send("log_study_params", dict(params))

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        handle = new_handle()
        self.process.send("start_trial", handle, number, dict(params), dict(tags))
        return handle

    def run_id(self, handle: str) -> str:
        return self.process.call("run_id", handle)

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        self.process.send("log_epoch", run_id, step, dict(metrics))

    def end_trial(
        self,
        run_id: str,
        status: str,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        self.process.send(
            "end_trial",
            run_id,
            status,
            metrics=None if metrics is None else dict(metrics),
            tags=None if tags is None else dict(tags),
        )

    def log_report(
        self,
        *,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        folder: Path,
        report: Any = None,
    ) -> list[str]:
        """Log the report's values and ``folder``; with ``report``, its figures are drawn into
        the folder first (by the tracking process, which has matplotlib loaded). Returns the
        figures' file names."""
        return self.process.call(
            "log_report",
            metrics=dict(metrics),
            params=dict(params),
            tags=dict(tags),
            folder=str(folder),
            report=report,
        )

    def reap(self, finished: FinishedTrials) -> int:
        reaped = self.process.call("reap", None)
        if reaped == NEED_STATES:
            reaped = self.process.call("reap", dict(finished()))
        return int(reaped)

    def end_study(self, status: str) -> None:
        self.process.call("end_study", status)

    def drain(self) -> None:
        self.process.call("drain")
