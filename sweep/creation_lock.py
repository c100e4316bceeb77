"""A lock around creating a study and its parent MLflow run, so that workers starting together
create each exactly once.

PostgreSQL: a session-level advisory lock in the study's own database, held by one connection.
SQLite: an exclusive ``flock`` on a file beside the database (workers share one host). Other
databases are not locked; start one worker first there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator

from sqlalchemy import create_engine, text

from sweep.locations import sqlite_path


@contextlib.contextmanager
def creation_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Hold the lock for ``study_name`` in ``storage_url`` while the block runs."""
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
        key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
        engine = create_engine(storage_url, poolclass=None)
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
