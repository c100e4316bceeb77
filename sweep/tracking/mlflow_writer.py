"""MLflow writes on one background thread, in order, retried when they fail, spooled to disk when
they fail for good.

Trials hand their buffered batches here and go on training; the thread writes them in the order
they came, so a run is never terminated before its metrics land. A failed write is retried with
backoff (a tracking server that restarts loses nothing). A write that still fails (the server is
down for longer) is appended to a spool file; the next writer for the same tracking URI replays
the spool first, so no completed trial loses its record in MLflow.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from sweep.provenance.redact import redact_url

logger = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS = (0.5, 2.0, 8.0, 30.0)


class MlflowWriter:
    """Ordered, retried, spooled execution of MLflow write operations (plain dicts)."""

    def __init__(self, client: MlflowClient, tracking_uri: str, spool: Path) -> None:
        self.client, self.tracking_uri, self.spool = client, tracking_uri, spool
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self._pending: list[Future] = []
        self._spool_lock = threading.Lock()
        self.spooled = 0

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

    def set_terminated(self, run_id: str, status: str) -> None:
        self.submit({"kind": "set_terminated", "run_id": run_id, "status": status})

    def submit(self, op: dict[str, Any]) -> None:
        """Queue ``op``; it runs after every op queued before it."""
        op = {**op, "tracking_uri": redact_url(self.tracking_uri)}  # the spool holds no password
        self._pending.append(self._executor.submit(self._with_retries, op))
        self._pending = [future for future in self._pending if not future.done()]

    def drain(self) -> None:
        """Wait until every queued op ran (or was spooled)."""
        for future in list(self._pending):
            future.result()
        self._pending = []
        if self.spooled:
            logger.warning(
                "%d MLflow write(s) could not reach %s and wait in %s; the next sweep, worker or "
                "`sweep report` against it sends them.",
                self.spooled,
                self.tracking_uri,
                self.spool,
            )

    def replay_spool(self) -> int:
        """Send what earlier writers spooled for this tracking URI; returns how many went out."""
        if not self.spool.exists():
            return 0
        with self._spool_lock:
            lines = self.spool.read_text().splitlines()
            ops = [json.loads(line) for line in lines if line.strip()]
            keep, sent = [], 0
            for op in ops:
                if op.get("tracking_uri") != redact_url(self.tracking_uri):
                    keep.append(op)
                    continue
                try:
                    self._execute(op)
                    sent += 1
                except Exception as err:  # noqa: BLE001 - still unreachable: keep it for later
                    logger.warning("spooled MLflow write still fails: %s", err)
                    keep.append(op)
            self._rewrite_spool(keep)
        return sent

    def _execute(self, op: dict[str, Any]) -> None:
        if op["kind"] == "log_batch":
            self.client.log_batch(
                op["run_id"],
                metrics=[Metric(*m) for m in op["metrics"]],
                params=[Param(*p) for p in op["params"]],
                tags=[RunTag(*t) for t in op["tags"]],
            )
        elif op["kind"] == "set_terminated":
            self.client.set_terminated(op["run_id"], status=op["status"])
        else:
            raise ValueError(f"unknown MLflow op kind {op['kind']!r}")

    def _with_retries(self, op: dict[str, Any]) -> None:
        for attempt, delay in enumerate((*RETRY_DELAYS_SECONDS, None)):
            try:
                self._execute(op)
                return
            except Exception as err:  # noqa: BLE001 - MLflow raises many kinds; all are retried
                if delay is None:
                    logger.error("MLflow write failed after retries, spooled: %s", err)
                    self._append_to_spool(op)
                    return
                logger.warning(
                    "MLflow %s on run %s failed (attempt %d), retrying in %.1f s: %s",
                    op["kind"],
                    op["run_id"],
                    attempt + 1,
                    delay,
                    err,
                )
                time.sleep(delay)

    def _append_to_spool(self, op: dict[str, Any]) -> None:
        with self._spool_lock:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            with open(self.spool, "a") as handle:
                handle.write(json.dumps(op) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.spooled += 1

    def _rewrite_spool(self, ops: list[dict[str, Any]]) -> None:
        if not ops:
            self.spool.unlink(missing_ok=True)
            return
        tmp = self.spool.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(op) + "\n" for op in ops))
        os.replace(tmp, self.spool)
