"""MLflow and the report's figures in a process of their own, started before the heavy imports.

A ``sweep run`` or ``sweep worker`` spends seconds importing libraries before it trains: torch,
scikit-learn and Optuna for training, MLflow and matplotlib for tracking and the report. On a
machine with a second core the two halves need not wait for each other. The ``sweep`` program
forks this process first thing (:func:`start`), while only the standard library and argparse are
loaded and no thread runs, so the fork is safe. The child loads MLflow and matplotlib while the
parent loads torch, then serves the parent's tracking calls (:class:`~sweep.tracking.
process_sink.ProcessSink`): it holds the :class:`~sweep.tracking.mlflow_sink.MlflowSink`, with
its writer thread, retries and spool, and draws the report's figures.

Calls that answer (opening the study's run, a run's id, the report, draining) wait for the child;
the rest (metrics, a trial's start and end) are sent and the parent goes on. When the parent
ends, however it ends (even kill -9), the child sees the pipe close, sends what it holds, and
exits: writes already handed over are never lost with the parent.

Only the ``sweep`` program starts it; the Python API and tests run the sink in their own process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection, Pipe
from typing import Any

from sweep.errors import TrackingProcessError

logger = logging.getLogger(__name__)


class TrackingProcess:
    """The parent's end of the pipe to the tracking process."""

    def __init__(self, pid: int, connection: Connection) -> None:
        self.pid, self._connection = pid, connection
        self._lock = threading.Lock()
        self._closed = False
        self._gone = False  # the child ended before it was closed

    def send(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Ask for ``name`` and go on; a failure shows at the next :meth:`call`."""
        with self._lock:
            self._send((False, name, args, kwargs))

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Ask for ``name`` and wait for its answer; the child's error is raised here."""
        with self._lock:
            self._send((True, name, args, kwargs))
            try:
                ok, value = self._connection.recv()
            except (EOFError, OSError) as err:
                raise TrackingProcessError(self._ended(f"before it answered {name}")) from err
        if not ok:
            raise TrackingProcessError(f"the tracking process failed {name}: {value}")
        return value

    def close(self) -> None:
        """Have the child send what it holds and exit; wait for it. Safe to call twice, and
        quiet when the child already ended (that was reported when it was found out)."""
        if self._closed:
            return
        try:
            if not self._gone:
                self.call("close")
        except TrackingProcessError as err:
            logger.error("%s", err)
        finally:
            self._closed = True
            self._connection.close()
            _wait(self.pid)

    def _send(self, message: tuple) -> None:
        if self._closed:
            raise TrackingProcessError("the tracking process was closed")
        try:
            self._connection.send(message)
        except OSError as err:
            raise TrackingProcessError(self._ended(f"while {message[1]} was sent")) from err

    def _ended(self, when: str) -> str:
        self._gone = True
        status = _wait(self.pid, block=False)
        how = f" ({status})" if status else ""
        return (
            f"the tracking process (pid {self.pid}) ended {when}{how}. The Optuna study keeps "
            "every finished trial: the same command resumes the sweep, and `sweep report` logs "
            "the report to MLflow."
        )


_STARTED: list[TrackingProcess] = []


def start() -> TrackingProcess | None:
    """Fork the tracking process, once per process; None where there is no ``os.fork``.

    Call it before importing anything that starts threads (torch, MLflow): the child is a copy
    of this process, and a fork copies no thread but the caller's.
    """
    if _STARTED:
        return _STARTED[0]
    if not hasattr(os, "fork"):
        return None
    for stream in (sys.stdout, sys.stderr):  # else the child would write them out again
        stream.flush()
    parent_end, child_end = Pipe(duplex=True)
    pid = os.fork()
    if pid == 0:  # the child
        parent_end.close()
        _serve(child_end)  # never returns
    child_end.close()
    process = TrackingProcess(pid, parent_end)
    _STARTED.append(process)
    return process


def started() -> TrackingProcess | None:
    """The tracking process this process started, if any."""
    return _STARTED[0] if _STARTED else None


def _serve(connection: Connection) -> None:
    """The child: load MLflow and matplotlib, then answer calls until told to close or until the
    parent is gone; then send what is held, and exit without the interpreter's teardown."""
    # Ctrl-C reaches the whole process group; the parent decides when a sweep stops, and this
    # process stays until it has sent every write the parent handed over.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = 0
    try:
        from sweep.tracking.tracking_server import TrackingServer

        TrackingServer().serve(connection)
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)


def _wait(pid: int, *, block: bool = True) -> str:
    """Reap the child; how it ended, in words ("" while it runs or when already reaped)."""
    try:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return ""
    if done == 0:
        return ""
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"
