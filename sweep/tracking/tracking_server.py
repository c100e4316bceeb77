"""The tracking process's side (see :mod:`sweep.tracking.tracking_process`): an MLflow sink and
the report's figures, driven by the parent's calls over a pipe.

Imported only in the child, where it loads MLflow and matplotlib while the parent loads torch.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sweep.provenance.dataset_facts import DatasetFacts
from sweep.report.build import StudyReport
from sweep.report.files import write_figures
from sweep.tracking.mlflow_context import run_context
from sweep.tracking.mlflow_sink import MlflowSink
from sweep.tracking.sink import NEED_STATES

logger = logging.getLogger(__name__)


class _StatesNeeded(Exception):
    pass


def _load_the_store_code() -> None:
    """Import what opening an MLflow store loads (SQLAlchemy's store, Alembic's schema check) now,
    before the parent asks: imports only, nothing is opened or created."""
    import alembic.runtime.migration  # noqa: F401
    import alembic.script  # noqa: F401
    import mlflow.store.db.utils  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import mlflow.tracking._tracking_service.utils  # noqa: F401


def _preload() -> None:
    """Load what the report's figures need (matplotlib and Optuna's plots) while the parent
    loads torch and trains, not at the report. A thread: calls are answered meanwhile. (The
    parameter importances come computed: scikit-learn and SciPy never load here.)"""
    import io

    import optuna.visualization.matplotlib  # noqa: F401

    from sweep.report.figures import close_all, plt

    figure = plt.figure(figsize=(1, 1))  # the first PNG loads PIL's plugins and the fonts
    figure.add_subplot().set_title("warm-up")
    figure.savefig(io.BytesIO(), format="png")
    close_all({"warm-up": figure})


def _draw_in_two_processes(folder: Path, report: StudyReport) -> list[str]:
    """The report's figures into ``folder``, drawn by this process and a fork of it at once
    (the sweep waits for them, and a core is free: the sweep's process only waits). The fork
    draws :data:`~sweep.report.figures.FIRST_PART` and exits; if it fails, they are drawn here.

    Forking a process that runs threads (the MLflow writer) is safe for what the fork does:
    it draws with matplotlib, writes PNG files and ends with ``os._exit``, touching no lock
    those threads hold (the interpreter re-creates its own and logging's at a fork)."""
    from sweep.report.figures import FIRST_PART  # loaded by the warm-up by now

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        pid = os.fork()
    except OSError:
        return write_figures(folder, report)
    if pid == 0:
        code = 1
        try:
            write_figures(folder, report, part=0)
            code = 0
        finally:
            os._exit(code)
    names = write_figures(folder, report, part=1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        logger.warning("the figure-drawing fork failed (status %d): drawing them here", status)
        return write_figures(folder, report, part=0) + names
    return [name for name in FIRST_PART if (folder / name).exists()] + names


class TrackingServer:
    """Answers the parent's calls, in the order they were sent."""

    def __init__(self) -> None:
        self.sink: MlflowSink | None = None
        self._failure = ""  # a call that was not waited for failed: told at the next call
        self._preload = threading.Thread(target=_preload, name="preload", daemon=True)

    def serve(self, connection: Connection) -> None:
        _load_the_store_code()
        self._preload.start()
        while True:
            try:
                answer, name, args, kwargs = connection.recv()
            except EOFError:  # the parent is gone: send what it handed over
                break
            if name == "close":
                self._drain()
                connection.send((True, None))
                return
            try:
                value = getattr(self, f"do_{name}")(*args, **kwargs)
                ok = True
            except Exception as err:  # noqa: BLE001 - told to the parent, which raises it
                value, ok = f"{type(err).__name__}: {err}", False
                if not answer:
                    logger.error("the tracking process failed %s: %s", name, value)
                    self._failure = self._failure or f"{name}: {value}"
            if answer:
                if ok and self._failure:
                    value, ok, self._failure = f"an earlier {self._failure}", False, ""
                connection.send((ok, value))
        self._drain()

    def _drain(self) -> None:
        if self.sink is not None:
            self.sink.drain()

    def _sink(self) -> MlflowSink:
        if self.sink is None:
            raise RuntimeError("open comes first")
        return self.sink

    # -- the calls (TrackingSink's, and what ProcessSink needs besides)

    def do_open(
        self,
        tracking_uri: str,
        experiment_name: str,
        *,
        dataset: DatasetFacts | None,
        space_file: str | None,
    ) -> str:
        context = run_context(dataset, space_file=space_file)
        self.sink = MlflowSink(tracking_uri, experiment_name, context=context)
        return self.sink.experiment_id

    def do_open_study(self, *, existing_run_id: str | None, tags: Mapping[str, Any]) -> str:
        return self._sink().open_study(existing_run_id=existing_run_id, tags=tags)

    def do_log_study_params(self, params: Mapping[str, Any]) -> None:
        self._sink().log_study_params(params)

    def do_start_trial(
        self, handle: str, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]
    ) -> None:
        self._sink().start_trial(number, params, tags, handle=handle)

    def do_run_id(self, handle: str) -> str:
        return self._sink().run_id(handle)

    def do_log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        self._sink().log_epoch(run_id, step, metrics)

    def do_end_trial(self, run_id: str, status: str, **values: Any) -> None:
        self._sink().end_trial(run_id, status, **values)

    def do_log_report(
        self,
        *,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        folder: str,
        report: StudyReport | None,
    ) -> list[str]:
        """Draw the report's figures into ``folder`` (when given the report), then log the
        folder; returns the figures' file names."""
        self._preload.join()  # pyplot is not thread-safe: its warm-up ends before any drawing
        names = _draw_in_two_processes(Path(folder), report) if report is not None else []
        self._sink().log_report(metrics=metrics, params=params, tags=tags, folder=Path(folder))
        return names

    def do_reap(self, states: Mapping[int, str] | None) -> int | str:
        """Reap with the trials' states, or answer :data:`NEED_STATES` when the sink needs them
        and they were not sent (the parent reads them from Optuna only then)."""

        def finished() -> Mapping[int, str]:
            if states is None:
                raise _StatesNeeded
            return states

        try:
            return self._sink().reap(finished)
        except _StatesNeeded:
            return NEED_STATES

    def do_end_study(self, status: str) -> None:
        self._sink().end_study(status)

    def do_drain(self) -> None:
        self._drain()
