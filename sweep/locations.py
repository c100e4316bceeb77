"""Where a sweep keeps its Optuna study and its MLflow runs, and how users override that."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORE_DIR = Path("mlruns")
DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
STORAGE_ENV = "SWEEP_STORAGE"
OPTUNA_STORAGE_ENV = "OPTUNA_STORAGE"  # Optuna's own CLI reads it too; ours comes first
TRACKING_ENV = "MLFLOW_TRACKING_URI"


def resolve_storage(flag: str | None) -> str:
    """``--storage`` beats ``$SWEEP_STORAGE`` beats ``$OPTUNA_STORAGE`` beats the embedded SQLite
    file under ``mlruns/``."""
    return (
        flag or os.environ.get(STORAGE_ENV) or os.environ.get(OPTUNA_STORAGE_ENV) or DEFAULT_STORAGE
    )


def resolve_tracking_uri(flag: str | None) -> str:
    """``--tracking-uri`` beats ``$MLFLOW_TRACKING_URI`` beats SQLite under ``mlruns/``; a SQLite
    file is made absolute (see :func:`absolute_sqlite_uri`)."""
    return absolute_sqlite_uri(flag or os.environ.get(TRACKING_ENV) or DEFAULT_TRACKING_URI)


def absolute_sqlite_uri(uri: str) -> str:
    """``uri`` with a relative SQLite file made absolute, from the working directory.

    MLflow caches its stores by URI for the life of the process: a relative one would keep
    naming the folder it was first used in, after the working directory changed.
    """
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    return f"sqlite:///{path.resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other kind of URI."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix) :])


def spool_path_for(tracking_uri: str) -> Path:
    """Where MLflow writes that failed for good wait to be sent: beside a SQLite store, else in
    ``mlruns/`` of the working directory."""
    db_file = sqlite_path(tracking_uri)
    folder = db_file.parent if db_file is not None else DEFAULT_STORE_DIR
    return folder / "mlflow_spool.jsonl"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite tracking store go in ``artifacts/`` beside its database file.

    A tracking server decides for itself, so it gets None.
    """
    db_file = sqlite_path(tracking_uri)
    if db_file is None:
        return None
    return (db_file.parent / "artifacts").resolve().as_uri()
