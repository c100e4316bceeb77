"""MLflow writes on one background thread, in order, retried when they fail, spooled to disk when
they fail for good.

Trials hand their writes here (run creation included) and go on training; the thread writes them
in the order they came, so a run is never terminated before its metrics land. A failed write is
retried with backoff for :data:`RETRY_DELAYS_SECONDS` in all (a tracking server that restarts
loses nothing). A write that still fails puts the writer offline: it and every later write go
straight to the spool (:mod:`sweep.tracking.spool`), at no cost to training, and every
:data:`PROBE_EVERY_SECONDS` the writer tries to send the spool and, if it can, goes back online.
The next writer for the same tracking URI replays the spool first, so no trial loses its record.

A trial's run is created by the writer too. Until then it is known by a handle
(``pending-<hex>``), which every later write names; the writer maps it to the run's id once the
run exists, in this process or, for a spooled creation, in the process that replays it.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sweep.provenance.redact import redact_url
from sweep.tracking.sink import PENDING_PREFIX
from sweep.tracking.spool import Refused, Replayed, Spool, Unreachable

logger = logging.getLogger(__name__)

# A write that fails is tried again after each delay: about 40 s in all, then it is spooled.
RETRY_DELAYS_SECONDS = (0.5, 2.0, 8.0, 30.0)
# While offline, the spool is tried this often; a write in between goes to the spool at once.
PROBE_EVERY_SECONDS = 60.0
# MLflow's own client retries a request 7 times with backoff (minutes) and waits 120 s for an
# answer; our writer retries instead, so a request is tried once and waits at most 10 s.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def cap_mlflow_http_retries() -> None:
    """Bound MLflow's own HTTP retries (read at each request), keeping a value the user set."""
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


class MlflowWriter:
    """Ordered, retried, spooled execution of MLflow write operations (plain dicts)."""

    def __init__(self, client: MlflowClient, tracking_uri: str, spool: Spool) -> None:
        self.client, self.tracking_uri, self.spool = client, tracking_uri, spool
        # Spool entries and messages name the store without its password.
        self.shown_uri = redact_url(tracking_uri)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self._pending: list[Future] = []
        self.run_ids: dict[str, str] = {}  # handle -> the run's id, once MLflow created it
        self.offline = False  # a write failed for good: later writes go to the spool
        self.struggling = False  # the last attempt failed (retries under way, or offline)
        self._creations: dict[str, Future] = {}  # handle -> its create_run, while queued
        self._last_probe = 0.0
        self.spooled = 0
        self.lost = 0  # writes that could not even be spooled (a full disk)
        self.rejected = 0
        self._told = (0, 0, 0)  # (spooled, lost, rejected) as last reported by drain()
        self._count_lock = threading.Lock()

    # -- what the sink queues

    def create_run(
        self, handle: str, experiment_id: str, *, run_name: str, tags: dict[str, str]
    ) -> None:
        self._creations[handle] = self.submit(
            {
                "kind": "create_run",
                "run_id": handle,
                "experiment_id": experiment_id,
                "run_name": run_name,
                "tags": tags,
                "start_time": int(time.time() * 1000),
            }
        )

    def log_batch(
        self, run_id: str, *, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        self.submit(
            {
                "kind": "log_batch",
                "run_id": run_id,
                "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
                "params": [[p.key, p.value] for p in params],
                "tags": [[t.key, t.value] for t in tags],
            }
        )

    def log_inputs(self, run_id: str, dataset_input: DatasetInput) -> None:
        """The run's dataset input, queued like every write (its fields are plain strings)."""
        data = dataset_input.dataset
        self.submit(
            {
                "kind": "log_inputs",
                "run_id": run_id,
                "dataset": [
                    data.name,
                    data.digest,
                    data.source_type,
                    data.source,
                    data.schema,
                    data.profile,
                ],
                "tags": [[tag.key, tag.value] for tag in dataset_input.tags],
            }
        )

    def set_terminated(self, run_id: str, status: str) -> None:
        self.submit(
            {
                "kind": "set_terminated",
                "run_id": run_id,
                "status": status,
                "end_time": int(time.time() * 1000),
            }
        )

    def submit(self, op: dict[str, Any]) -> Future:
        """Queue ``op``; it runs after every op queued before it."""
        op = {**op, "tracking_uri": self.shown_uri}
        future = self._executor.submit(self._deliver, op)
        self._pending.append(future)
        self._pending = [pending for pending in self._pending if not pending.done()]
        return future

    def run_id(self, handle: str) -> str:
        """The id of the run ``handle`` names. While the store answers, waits for the run's
        creation (queued behind a few writes); "" when it is not created and the store fails
        (the creation is being retried, or spooled for a later replay)."""
        if not handle.startswith(PENDING_PREFIX):
            return handle
        creation = self._creations.get(handle)
        while creation is not None and handle not in self.run_ids and not self.struggling:
            try:
                creation.result(timeout=0.05)
            except TimeoutError:
                continue
            break
        if handle in self.run_ids:
            self._creations.pop(handle, None)
        return self.run_ids.get(handle, "")

    def drain(self) -> None:
        """Wait until every queued op ran (or was spooled), and say what did not reach MLflow."""
        for future in list(self._pending):
            future.result()
        self._pending = []
        counts = (self.spooled, self.lost, self.rejected)
        spooled, lost, rejected = (now - told for now, told in zip(counts, self._told))
        self._told = counts
        if spooled:
            logger.warning(
                "%d MLflow write(s) could not reach %s and wait in %s; the next sweep, worker or "
                "`sweep report` against it sends them.",
                spooled,
                self.shown_uri,
                self.spool.path,
            )
        if lost:
            logger.error(
                "%d MLflow write(s) could not reach %s nor be spooled to %s (see the error "
                "above): they are lost to MLflow; the Optuna study keeps every trial's record.",
                lost,
                self.shown_uri,
                self.spool.path,
            )
        if rejected:
            logger.warning(
                "%d MLflow write(s) refused by %s were moved to %s.",
                rejected,
                self.shown_uri,
                self.spool.rejected_path,
            )

    def replay_spool(self) -> Replayed:
        """Send what earlier writers spooled for this tracking URI, in order; stops at the first
        write the store cannot take now. Warns once per kind of trouble."""
        if not self.spool.exists():
            return Replayed()
        self.run_ids.update(self.spool.aliases())
        done = self.spool.replay(
            self._send_spooled,
            mine=lambda entry: entry.get("tracking_uri") == self.shown_uri,
            keep_as=self._resolved,
        )
        if done.sent:
            logger.warning(
                "%d spooled MLflow write(s) sent to %s.",
                done.sent,
                self.shown_uri,
            )
        if done.malformed:
            logger.warning(
                "%d malformed line(s) in %s skipped (cut short or not a write); moved to %s.",
                done.malformed,
                self.spool.path,
                self.spool.rejected_path,
            )
        if done.refused or done.expired:
            logger.warning(
                "%d spooled MLflow write(s) refused by %s or too old; moved to %s.",
                done.refused + done.expired,
                self.shown_uri,
                self.spool.rejected_path,
            )
        if done.unreachable is not None:
            logger.warning(
                "%d spooled MLflow write(s) wait in %s: %s still fails (%s).",
                done.kept,
                self.spool.path,
                self.shown_uri,
                done.unreachable,
            )
        return done

    # -- on the writer thread

    def _deliver(self, op: dict[str, Any]) -> None:
        if self.offline and not self._back_online():
            self._to_spool(op)
            return
        deadline = time.monotonic() + sum(RETRY_DELAYS_SECONDS)
        for attempt, delay in enumerate((*RETRY_DELAYS_SECONDS, None), start=1):
            try:
                self._send(op)
                self.struggling = False
                return
            except Refused as err:
                logger.warning("MLflow refused %s on run %s: %s", op["kind"], op["run_id"], err)
                self._reject(op, str(err))
                return
            except Unreachable as err:
                self.struggling = True
                left = deadline - time.monotonic()
                if delay is None or left <= 0:
                    logger.error(
                        "MLflow %s on run %s failed for %.0f s (%s): spooling it and the writes "
                        "after it; training goes on.",
                        op["kind"],
                        op["run_id"],
                        sum(RETRY_DELAYS_SECONDS),
                        err,
                    )
                    self.offline, self._last_probe = True, time.monotonic()
                    self._to_spool(op)
                    return
                logger.warning(
                    "MLflow %s on run %s failed (attempt %d), retrying in %.1f s: %s",
                    op["kind"],
                    op["run_id"],
                    attempt,
                    min(delay, left),
                    err,
                )
                time.sleep(min(delay, left))

    def _back_online(self) -> bool:
        """While offline, every PROBE_EVERY_SECONDS: send the spool; online again if it all went."""
        if time.monotonic() - self._last_probe < PROBE_EVERY_SECONDS:
            return False
        self._last_probe = time.monotonic()
        done = self.replay_spool()
        if done.unreachable is not None:
            return False
        self.offline = self.struggling = False
        logger.warning("%s answers again: writing live.", self.shown_uri)
        return True

    def _to_spool(self, op: dict[str, Any]) -> None:
        try:
            self.spool.append(self._resolved(op))
        except OSError as err:
            reason = "the disk is full" if err.errno == errno.ENOSPC else "it cannot be written"
            logger.error(
                "MLflow %s on run %s is LOST: not sent, and not spooled to %s because %s (%s).",
                op["kind"],
                op["run_id"],
                self.spool.path,
                reason,
                err,
            )
            with self._count_lock:
                self.lost += 1
            return
        with self._count_lock:
            self.spooled += 1

    def _reject(self, op: dict[str, Any], reason: str) -> None:
        try:
            self.spool.reject(self._resolved(op), reason)
        except OSError as err:
            logger.error(
                "could not keep the refused write in %s: %s", self.spool.rejected_path, err
            )
        with self._count_lock:
            self.rejected += 1

    def _send_spooled(self, entry: dict[str, Any]) -> None:
        self._send(entry)
        if entry.get("kind") == "create_run":
            # Another process may hold writes for this run, spooled under its handle.
            self.spool.remember(entry["run_id"], self.run_ids[entry["run_id"]])

    def _send(self, op: dict[str, Any]) -> None:
        """Execute ``op``; raises Refused (never to be taken) or Unreachable (try later)."""
        try:
            self._execute(op)
        except Refused:
            raise
        except MlflowException as err:
            if 400 <= err.get_http_status_code() < 500:
                raise Refused(str(err)) from err
            raise Unreachable(str(err)) from err
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise Refused(f"malformed entry ({type(err).__name__}: {err})") from err
        except Exception as err:  # noqa: BLE001 - connection errors of every kind: try later
            raise Unreachable(f"{type(err).__name__}: {err}") from err

    def _execute(self, op: dict[str, Any]) -> None:
        kind = op["kind"]
        if kind == "create_run":
            if op["run_id"] in self.run_ids:
                return  # created already (a replay after a crash in the middle of one)
            run = self.client.create_run(
                op["experiment_id"],
                start_time=op["start_time"],
                tags=dict(op["tags"]),
                run_name=op["run_name"],
            )
            self.run_ids[op["run_id"]] = run.info.run_id
            return
        run_id = self._run_id(op["run_id"])
        if kind == "log_batch":
            self.client.log_batch(
                run_id,
                metrics=[Metric(*m) for m in op["metrics"]],
                params=[Param(*p) for p in op["params"]],
                tags=[RunTag(*t) for t in op["tags"]],
            )
        elif kind == "log_inputs":
            dataset = DatasetInput(
                MlflowDataset(*op["dataset"]), tags=[InputTag(*tag) for tag in op["tags"]]
            )
            self.client.log_inputs(run_id, datasets=[dataset])
        elif kind == "set_terminated":
            self.client.set_terminated(run_id, status=op["status"], end_time=op.get("end_time"))
        else:
            raise ValueError(f"unknown MLflow op kind {kind!r}")

    def _run_id(self, run_id: str) -> str:
        if not run_id.startswith(PENDING_PREFIX):
            return run_id
        if run_id not in self.run_ids:
            raise Refused(f"its run ({run_id}) was never created")
        return self.run_ids[run_id]

    def _resolved(self, op: dict[str, Any]) -> dict[str, Any]:
        """``op`` naming its run by id where the handle is resolved (not a create_run)."""
        if op.get("kind") == "create_run" or op.get("run_id") not in self.run_ids:
            return op
        return {**op, "run_id": self.run_ids[op["run_id"]]}
