"""SQLite settings for the embedded stores: write-ahead log, and fsync at checkpoints only.

A trial writes a few dozen small transactions (Optuna's reports and attributes, MLflow's batches).
With SQLite's default rollback journal every commit pays two or three fsyncs; with WAL and
``synchronous=NORMAL`` it pays none until a checkpoint. A committed trial survives a crash or a
kill -9 of the sweep; only a power cut or an OS crash may roll back the last commits, which a
resume then reruns. WAL needs a local disk: shared studies belong in PostgreSQL.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_registered = False


def _on_connect(dbapi_connection: object, _record: object) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")  # several workers on one host wait, not fail
    cursor.close()


def tune_sqlite_connections() -> None:
    """Apply the settings to every SQLite connection SQLAlchemy opens in this process from now on.

    Covers both Optuna's and MLflow's engines; other databases are untouched. Idempotent.
    """
    global _registered
    if not _registered:
        event.listen(Engine, "connect", _on_connect)
        _registered = True
