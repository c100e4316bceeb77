"""What the rest of the sweep sees of experiment tracking: a small protocol.

The trial loop starts a run per trial, logs each epoch's metrics and ends the run with its
status; the end of a sweep logs the report and reaps runs that dead workers left RUNNING. MLflow
is one implementation (:class:`~sweep.tracking.mlflow_sink.MlflowSink`, the only code that imports
MLflow besides the ``runs:/`` reader of :mod:`sweep.best_config`); tests use
:class:`~sweep.tracking.memory_sink.MemorySink`. A new tracking backend implements this protocol
and nothing else.

Run statuses are MLflow's words: RUNNING, FINISHED, KILLED (a pruned trial) and FAILED.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

# Trial number -> its Optuna state's name (COMPLETE, PRUNED, FAIL), for the trials that are over.
FinishedTrials = Callable[[], Mapping[int, str]]
# The run status of a trial that is over, by its state.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
# The tracking process's answer to reap when it needs the trials' states (only then read).
NEED_STATES = "need trial states"
PENDING_PREFIX = "pending-"  # a trial run's handle until the tracking store created the run


def new_handle() -> str:
    """A new trial run's handle: what every write names the run by until it exists."""
    return PENDING_PREFIX + uuid.uuid4().hex


class TrackingSink(Protocol):
    experiment_id: str
    parent_run_id: str | None  # the study's run, once open_study ran

    def open_study(self, *, existing_run_id: str | None, tags: Mapping[str, Any]) -> str:
        """Reuse the study's run when it still exists (a resume), else create it; its id."""
        ...

    def log_study_params(self, params: Mapping[str, Any]) -> None:
        """What the study searches and trains on, written once when its run is created."""
        ...

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        """A RUNNING run nested under the study's run for trial ``number``; its handle, which
        every later call names it by."""
        ...

    def run_id(self, handle: str) -> str:
        """The store's id of the run :meth:`start_trial` returned ``handle`` for (a sink may
        create runs later, when its store answers); "" while it does not exist yet."""
        ...

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        """Metrics of one epoch (buffered: a sink writes in batches)."""
        ...

    def end_trial(
        self,
        run_id: str,
        status: str,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """The trial's last metrics and tags, then its status, in that order."""
        ...

    def log_report(
        self,
        *,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        folder: Path,
    ) -> None:
        """The study's report on its run: values, write-once params, and every file in
        ``folder``."""
        ...

    def reap(self, finished: FinishedTrials) -> int:
        """End the RUNNING runs of trials that are over (their worker died); how many.
        ``finished`` is called only when there is such a run."""
        ...

    def end_study(self, status: str) -> None:
        """Wait for every queued write, then set the study's run status."""
        ...

    def drain(self) -> None:
        """Wait until every queued write is done."""
        ...
