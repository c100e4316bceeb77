"""Our MLflow adapter: one parent run per study, one nested run per trial, batched writes.

Every write goes through :class:`RunBuffer`, which sends metrics with ``log_batch`` in chunks, so a
trial costs a handful of requests whatever its number of epochs and folds; the requests run on a
background thread (:mod:`sweep.mlflow_writer`) while training goes on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from sweep.locations import absolute_sqlite_uri, artifact_root_for, spool_path_for
from sweep.mlflow_writer import MlflowWriter
from sweep.trial_record import TRIAL_NUMBER_TAG

# MLflow 3 opens experiments in its GenAI view unless told this is model training.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
PARENT_RUN_ATTR = "mlflow_parent_run_id"
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
MAX_ENTITIES_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_TAGS_PER_BATCH = 100
FLUSH_EVERY_SECONDS = 15.0  # long trials still show progress in the UI


class RunBuffer:
    """Collects a run's metrics, params and tags and sends them in few ``log_batch`` calls,
    through the tracker's background writer."""

    def __init__(self, client: MlflowClient, run_id: str, writer: MlflowWriter) -> None:
        self.client, self.run_id, self.writer = client, run_id, writer
        self.metrics: list[Metric] = []
        self.params: list[Param] = []
        self.tags: list[RunTag] = []
        self.last_flush = time.monotonic()

    def metric(self, key: str, value: float, step: int = 0) -> None:
        self.metrics.append(Metric(key, float(value), int(time.time() * 1000), step))

    def metric_dict(self, values: Mapping[str, float], step: int = 0) -> None:
        for key, value in values.items():
            self.metric(key, value, step)

    def param_dict(self, values: Mapping[str, Any]) -> None:
        self.params.extend(Param(key, str(value)) for key, value in values.items())

    def tag_dict(self, values: Mapping[str, Any]) -> None:
        self.tags.extend(RunTag(key, str(value)) for key, value in values.items())

    def flush_if_due(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS:
            self.flush()

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


class Tracker:
    """The study's experiment and parent run in MLflow, and the factory of its trial runs.

    Example:
        >>> tracker = Tracker("sqlite:///mlruns/mlflow.db", "default")
        >>> parent_id = tracker.open_parent(existing_run_id=None, tags={"study": "default"})
    """

    def __init__(self, tracking_uri: str, experiment_name: str) -> None:
        tracking_uri = absolute_sqlite_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment_id = self._experiment(experiment_name, artifact_root_for(tracking_uri))
        self.parent_run_id: str | None = None
        self.trial_run_ids: set[str] = set()  # the runs this tracker created: it ends them itself
        self.writer = MlflowWriter(self.client, tracking_uri, spool_path_for(tracking_uri))
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

    def open_parent(self, *, existing_run_id: str | None, tags: Mapping[str, Any]) -> str:
        """Reuse the study's parent run when it still exists (a resume); else create it."""
        if existing_run_id is not None and self._run_exists(existing_run_id):
            self.client.update_run(existing_run_id, status="RUNNING")
            self.parent_run_id = existing_run_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=tags.get("study"),
                tags={k: str(v) for k, v in tags.items()},
            )
            self.parent_run_id = run.info.run_id
        return self.parent_run_id

    def start_trial(
        self, trial_number: int, params: Mapping[str, Any], tags: Mapping[str, Any]
    ) -> RunBuffer:
        """A RUNNING nested run for one trial; its params are written at once."""
        assert self.parent_run_id is not None, "open_parent() comes before start_trial()"
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial_number:04d}",
            tags={
                PARENT_TAG: self.parent_run_id,
                TRIAL_NUMBER_TAG: str(trial_number),
                **{k: str(v) for k, v in tags.items()},
            },
        )
        self.trial_run_ids.add(run.info.run_id)
        buffer = RunBuffer(self.client, run.info.run_id, self.writer)
        buffer.param_dict(params)
        buffer.flush()
        return buffer

    def finish_run(self, buffer: RunBuffer, status: str) -> None:
        """Flush what is buffered, then mark the run FINISHED, KILLED or FAILED (in that order)."""
        buffer.flush()
        self.writer.set_terminated(buffer.run_id, status)

    def drain(self) -> None:
        """Wait for every queued write (see :class:`~sweep.mlflow_writer.MlflowWriter`)."""
        self.writer.drain()

    def parent_buffer(self) -> RunBuffer:
        assert self.parent_run_id is not None
        return RunBuffer(self.client, self.parent_run_id, self.writer)

    def log_parent_artifacts(self, folder: Path) -> None:
        """Upload every file in ``folder`` to the parent run's artifact root, in one call."""
        assert self.parent_run_id is not None
        self.writer.drain()
        self.client.log_artifacts(self.parent_run_id, str(folder))

    def end_parent(self, status: str) -> None:
        assert self.parent_run_id is not None
        self.writer.drain()
        self.client.set_terminated(self.parent_run_id, status=status)

    def _run_exists(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - MLflow raises its own error types for a missing run
            return False
        return run.info.lifecycle_stage == "active"
