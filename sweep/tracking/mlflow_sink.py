"""The MLflow sink: one experiment per study, one parent run per study, one nested run per trial,
batched writes. With its background writer (:mod:`sweep.tracking.mlflow_writer`), the run context
and dataset input of :mod:`sweep.tracking.mlflow_context` and the reader of :mod:`sweep.best_config`,
the only code that imports MLflow.

Every write is buffered per run and sent with ``log_batch`` in chunks, so a trial costs a handful
of requests whatever its number of epochs and folds; the requests run on a background thread while
training goes on. A trial's run is created on that thread too: a lost tracking server never holds
up training (see :mod:`sweep.tracking.mlflow_writer`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from sweep.locations import absolute_sqlite_uri, artifact_root_for, spool_path_for, sqlite_path
from sweep.study.trial_record import TRIAL_NUMBER_TAG
from sweep.tracking.mlflow_context import SPACE_ARTIFACT_DIR, RunContext
from sweep.tracking.mlflow_writer import MlflowWriter, cap_mlflow_http_retries
from sweep.tracking.sink import RUN_STATUS, FinishedTrials, new_handle
from sweep.tracking.spool import Spool

logger = logging.getLogger(__name__)

# MLflow 3 opens experiments in its GenAI view unless told this is model training.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
MAX_ENTITIES_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_TAGS_PER_BATCH = 100
FLUSH_EVERY_SECONDS = 15.0  # long trials still show progress in the UI


class _RunBuffer:
    """One run's buffered metrics, params and tags, sent in few ``log_batch`` calls."""

    def __init__(self, run_id: str, writer: MlflowWriter) -> None:
        self.run_id, self.writer = run_id, writer
        self.metrics: list[Metric] = []
        self.params: list[Param] = []
        self.tags: list[RunTag] = []
        self.last_flush = time.monotonic()

    def add(
        self,
        metrics: Mapping[str, float] | None = None,
        step: int = 0,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        now = int(time.time() * 1000)
        self.metrics.extend(Metric(k, float(v), now, step) for k, v in (metrics or {}).items())
        self.params.extend(Param(k, str(v)) for k, v in (params or {}).items())
        self.tags.extend(RunTag(k, str(v)) for k, v in (tags or {}).items())

    def flush(self) -> None:
        """Send everything buffered in as few ``log_batch`` calls as MLflow's limits allow."""
        metrics, params, tags = self.metrics, self.params, self.tags
        while metrics or params or tags:
            batch_params, params = (
                params[:MAX_PARAMS_TAGS_PER_BATCH],
                params[MAX_PARAMS_TAGS_PER_BATCH:],
            )
            batch_tags, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
            room = MAX_ENTITIES_PER_BATCH - len(batch_params) - len(batch_tags)
            batch_metrics, metrics = metrics[:room], metrics[room:]
            self.writer.log_batch(
                self.run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags
            )
        self.metrics, self.params, self.tags = [], [], []
        self.last_flush = time.monotonic()


class MlflowSink:
    """The study's experiment and run in MLflow, and its trials' nested runs.

    Implements :class:`~sweep.tracking.sink.TrackingSink`.

    Example:
        >>> sink = MlflowSink("sqlite:///mlruns/mlflow.db", "default")
        >>> parent_id = sink.open_study(existing_run_id=None, tags={"study": "default"})
    """

    def __init__(
        self, tracking_uri: str, experiment_name: str, *, context: RunContext | None = None
    ) -> None:
        cap_mlflow_http_retries()
        tracking_uri = absolute_sqlite_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.context = context or RunContext()  # what every run this sink creates gets
        self.experiment_id = self._experiment(experiment_name, artifact_root_for(tracking_uri))
        self.parent_run_id: str | None = None
        self._buffers: dict[str, _RunBuffer] = {}  # this sink's RUNNING trial runs, by handle
        self.trial_numbers: set[int] = set()  # the trials whose runs this sink ends itself
        self.writer = MlflowWriter(self.client, tracking_uri, Spool(spool_path_for(tracking_uri)))
        self.writer.replay_spool()  # what an earlier sweep could not send

    def _experiment(self, name: str, artifact_root: str | None) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = f"{artifact_root}/{name}" if artifact_root else None
            experiment_id = self.client.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        self.client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND_TAG)
        return experiment_id

    # -- the study's run

    def open_study(self, *, existing_run_id: str | None, tags: Mapping[str, Any]) -> str:
        if existing_run_id is not None and self._run_exists(existing_run_id):
            self.client.update_run(existing_run_id, status="RUNNING")
            self.parent_run_id = existing_run_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=tags.get("study"),
                tags={**self.context.tags, **{k: str(v) for k, v in tags.items()}},
            )
            self.parent_run_id = run.info.run_id
            self._log_dataset(self.parent_run_id)
            if self.context.space_file is not None:
                self.client.log_artifact(
                    self.parent_run_id, str(self.context.space_file), SPACE_ARTIFACT_DIR
                )
        return self.parent_run_id

    def attach_study(self, parent_run_id: str) -> None:
        """Write to an existing study run without touching its status (``sweep report``)."""
        self.parent_run_id = parent_run_id

    def log_study_params(self, params: Mapping[str, Any]) -> None:
        buffer = self._parent_buffer()
        buffer.add(params=params)
        buffer.flush()

    def log_report(
        self,
        *,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        folder: Path,
    ) -> None:
        buffer = self._parent_buffer()
        if params and not self.writer.struggling:
            # MLflow params are write-once: a study whose budget is raised later may find a new
            # best; its params keep their first value while the tags and files follow the best.
            # (Unread, a changed param is refused, in a batch of its own.)
            with contextlib.suppress(Exception):
                existing = self.client.get_run(buffer.run_id).data.params
                params = {k: v for k, v in params.items() if existing.get(k, str(v)) == str(v)}
        buffer.add(params=params)
        buffer.flush()
        buffer.add(metrics, tags=tags)
        buffer.flush()
        self.writer.drain()
        if self.writer.offline:
            logger.warning(
                "the report's files were not uploaded to %s (unreachable); `sweep report` "
                "uploads them once it answers.",
                self.tracking_uri,
            )
            return
        try:
            self.client.log_artifacts(buffer.run_id, str(folder))
        except Exception as err:  # noqa: BLE001 - the files are also on disk: not worth a crash
            logger.warning("the report's files were not uploaded to %s: %s", self.tracking_uri, err)

    def end_study(self, status: str) -> None:
        assert self.parent_run_id is not None
        self.writer.set_terminated(self.parent_run_id, status)
        self.writer.drain()

    def drain(self) -> None:
        """Wait for every queued write (see :class:`~sweep.tracking.mlflow_writer.MlflowWriter`)."""
        self.writer.drain()

    # -- trial runs

    def start_trial(
        self,
        number: int,
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        *,
        handle: str | None = None,
    ) -> str:
        """A RUNNING nested run for one trial, with its params, created on the writer's thread;
        returns its handle (see :meth:`run_id`): ``handle`` when the caller made it
        (:func:`~sweep.tracking.sink.new_handle`), else a new one."""
        assert self.parent_run_id is not None, "open_study() comes before start_trial()"
        handle = handle or new_handle()
        self.writer.create_run(
            handle,
            self.experiment_id,
            run_name=f"trial-{number:04d}",
            tags={
                **self.context.tags,
                PARENT_TAG: self.parent_run_id,
                TRIAL_NUMBER_TAG: str(number),
                **{k: str(v) for k, v in tags.items()},
            },
        )
        self._log_dataset(handle)
        self.trial_numbers.add(number)
        buffer = self._buffers[handle] = _RunBuffer(handle, self.writer)
        buffer.add(params=params)
        buffer.flush()
        return handle

    def run_id(self, handle: str) -> str:
        """The MLflow id of the run :meth:`start_trial` returned ``handle`` for; "" until the
        writer created it (it may be spooled, and created by a later replay)."""
        return self.writer.run_id(handle)

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        buffer = self._buffers[run_id]
        buffer.add(metrics, step)
        if time.monotonic() - buffer.last_flush >= FLUSH_EVERY_SECONDS:
            buffer.flush()

    def end_trial(
        self,
        run_id: str,
        status: str,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Flush what is buffered, then mark the run FINISHED, KILLED or FAILED (in that order)."""
        buffer = self._buffers.pop(run_id)
        buffer.add(metrics, tags=tags)
        buffer.flush()
        self.writer.set_terminated(run_id, status)

    def reap(self, finished: FinishedTrials) -> int:
        """Terminate the RUNNING runs of this study's trials that are over.

        A worker killed with kill -9 leaves its run RUNNING. A run names its trial by its
        ``optuna.trial_number`` and parent tags, set when it is created, so a trial killed before
        its end is found without anything written to Optuna. The runs of this sink's trials are
        left to it (its writer may still hold their writes), so when only those and the study's
        run are RUNNING, neither is the writer waited for nor ``finished`` called. With the
        tracking store unreachable, nothing is reaped (a later sweep or worker does it).
        """
        if self.writer.struggling:  # retrying or offline: not worth a search that fails
            return 0
        try:
            running = self.client.search_runs(
                [self.experiment_id],
                filter_string="attributes.status = 'RUNNING'",
                max_results=5000,
            )
        except Exception as err:  # noqa: BLE001 - reaping is housekeeping: never worth a crash
            logger.warning("runs left RUNNING were not reaped (%s): %s", self.tracking_uri, err)
            return 0
        mine = {str(number) for number in self.trial_numbers}
        others = [
            run
            for run in running
            if run.data.tags.get(PARENT_TAG) == self.parent_run_id
            and run.data.tags.get(TRIAL_NUMBER_TAG) not in mine
        ]
        if not others:
            return 0
        states = finished()
        reaped = 0
        for run in others:
            number = run.data.tags.get(TRIAL_NUMBER_TAG, "")
            state = states.get(int(number)) if number.isdigit() else None
            if state in RUN_STATUS:
                reaped_run = _RunBuffer(run.info.run_id, self.writer)
                reaped_run.add(tags={"reaped": f"trial ended {state}"})
                reaped_run.flush()
                self.writer.set_terminated(run.info.run_id, RUN_STATUS[state])
                reaped += 1
        if reaped:
            self.writer.drain()
        return reaped

    # -- helpers

    def _log_dataset(self, run_id: str) -> None:
        """The data as the run's dataset input, queued with the run's other writes (MLflow
        stores the dataset once per experiment and links each run to it)."""
        if self.context.dataset is not None:
            self.writer.log_inputs(run_id, self.context.dataset)

    def _parent_buffer(self) -> _RunBuffer:
        assert self.parent_run_id is not None
        return _RunBuffer(self.parent_run_id, self.writer)

    def _run_exists(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - MLflow raises its own error types for a missing run
            return False
        return run.info.lifecycle_stage == "active"


def newest_study(tracking_uri: str) -> tuple[str, str] | None:
    """``(experiment id, name)`` of the newest study's experiment, or None when there is none."""
    db_file = sqlite_path(tracking_uri)
    if db_file is not None and not db_file.exists():
        return None
    cap_mlflow_http_retries()
    experiments = [
        e for e in MlflowClient(tracking_uri).search_experiments() if e.name != "Default"
    ]
    if not experiments:
        return None
    newest = max(experiments, key=lambda e: e.creation_time or 0)
    return newest.experiment_id, newest.name
