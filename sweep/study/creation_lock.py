"""A lock around creating shared state (the storage's tables, a study, its parent MLflow run), so
that workers starting together create each exactly once.

PostgreSQL: a session-level advisory lock in the study's own database, held by one connection.
SQLite: an exclusive ``flock`` on a file beside the database (workers share one host). Other
databases are not locked; start one worker first there. The lock is re-entrant within a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from sweep.locations import sqlite_path

_held: dict[str, int] = {}  # storage URL -> nesting depth in this process
LOCK_NAME = "batchsweep.creation"


@contextlib.contextmanager
def creation_lock(storage_url: str) -> Iterator[None]:
    """Hold the creation lock of ``storage_url`` while the block runs."""
    if _held.get(storage_url):
        _held[storage_url] += 1
        try:
            yield
        finally:
            _held[storage_url] -= 1
        return
    with _acquire(storage_url):
        _held[storage_url] = 1
        try:
            yield
        finally:
            _held[storage_url] = 0


@contextlib.contextmanager
def _acquire(storage_url: str) -> Iterator[None]:
    db_file = sqlite_path(storage_url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{db_file}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if storage_url.startswith("postgresql"):
        key = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
        engine = create_engine(storage_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            engine.dispose()
        return
    yield
