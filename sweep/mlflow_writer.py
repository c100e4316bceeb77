"""MLflow writes on one background thread, in order, retried when they fail.

Trials hand their buffered batches here and go on training; the thread writes them in the order
they came, so a run is never terminated before its metrics land. A failed write is retried with
backoff (a tracking server that restarts loses nothing); :meth:`MlflowWriter.drain` waits for the
queue and reports writes that failed for good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

logger = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS = (0.5, 2.0, 8.0, 30.0)


class MlflowWriteError(RuntimeError):
    """Some MLflow writes failed after every retry."""


class MlflowWriter:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self._pending: list[Future] = []
        self._failures: list[str] = []

    def submit(self, description: str, write: Callable[[], object]) -> None:
        """Queue ``write``; it runs after every write queued before it."""
        self._pending.append(self._executor.submit(self._with_retries, description, write))
        self._pending = [future for future in self._pending if not future.done()]

    def drain(self) -> None:
        """Wait until every queued write ran; raise if any failed for good."""
        for future in list(self._pending):
            future.result()
        self._pending = []
        if self._failures:
            failures, self._failures = self._failures, []
            raise MlflowWriteError(
                f"{len(failures)} MLflow write(s) failed after retries; first: {failures[0]}"
            )

    def _with_retries(self, description: str, write: Callable[[], object]) -> None:
        for attempt, delay in enumerate((*RETRY_DELAYS_SECONDS, None)):
            try:
                write()
                return
            except Exception as err:  # noqa: BLE001 - MLflow raises many kinds; all are retried
                if delay is None:
                    self._failures.append(f"{description}: {err}")
                    logger.error("MLflow write failed for good: %s: %s", description, err)
                    return
                logger.warning(
                    "MLflow write failed (%s, attempt %d), retrying in %.1f s: %s",
                    description,
                    attempt + 1,
                    delay,
                    err,
                )
                time.sleep(delay)
