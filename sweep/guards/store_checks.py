"""The Optuna storage and the MLflow tracking store, checked before either is touched: a URL that
parses, a backend the store supports, its Python driver installed, not an in-memory SQLite
database (gone when the process ends), not a directory, not locked by another process, and a
database server that answers within seconds. Each failure is a UsageError naming the flag (or
environment variable) that carried the URL."""

from __future__ import annotations

import http.client
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from sweep.errors import UsageError
from sweep.locations import (
    STORAGE_ENV,
    TRACKING_ENV,
    resolve_storage,
    resolve_tracking_uri,
)

CONNECT_SECONDS = 5  # a database or tracking server that does not answer within this is down
SQLITE_LOCK_SECONDS = 5  # a SQLite file another process holds longer than this is locked

OPTUNA_BACKENDS = ("sqlite", "postgresql", "mysql")
MLFLOW_BACKENDS = ("sqlite", "postgresql", "mysql", "mssql")  # mlflow.store.db.db_types
STORAGE_FLAG = "--storage"
TRACKING_FLAG = "--tracking-uri"

# The driver module SQLAlchemy imports -> what to install
_DRIVER_PACKAGES = {
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}
# How each driver is told to give up connecting
_TIMEOUT_ARGUMENT = {
    "postgresql": "connect_timeout",
    "mysql": "connect_timeout",
    "mssql": "timeout",
}


def origin(flag_value: str | None, flag: str, env: str) -> str:
    """What carried a store's URL, for the messages: the flag, the environment variable, or
    the default.

    Example:
        >>> origin(None, "--storage", "SWEEP_STORAGE")  # with $SWEEP_STORAGE unset
        'the default --storage'
    """
    if flag_value:
        return flag
    if os.environ.get(env):
        return f"${env}"
    return f"the default {flag}"


def check_storage_url(url: str, *, source: str = STORAGE_FLAG) -> None:
    """An Optuna storage URL that will work, or a UsageError naming ``source``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:  # ValueError: a port that is not a number
        raise UsageError(
            f"{source}: {url!r} is not a database URL. Use e.g. sqlite:///mlruns/optuna.db "
            "or postgresql://user@host:5432/dbname."
        ) from err
    if parsed.get_backend_name() not in OPTUNA_BACKENDS:
        raise UsageError(
            f"{source}: backend {parsed.get_backend_name()!r} in {_shown(parsed)} is not "
            "supported by Optuna's storage. Use sqlite:///PATH, postgresql://... or mysql://... ."
        )
    _check_database(parsed, source, store="the study")


def check_tracking_uri(uri: str, *, source: str = TRACKING_FLAG) -> None:
    """An MLflow tracking URI that will work, or a UsageError naming ``source``: a tracking
    server that answers, or a database store MLflow accepts (any SQLAlchemy URL of sqlite,
    postgresql, mysql or mssql, with or without ``+driver``)."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri, source)
        return
    unsupported = UsageError(
        f"{source}: {uri!r} is not supported. MLflow 3 needs a database store "
        "(sqlite:///mlruns/mlflow.db, postgresql://..., mysql://..., mssql://...) or a tracking "
        "server (http://host:5000); the old ./mlruns file store and Databricks are refused."
    )
    try:
        parsed = make_url(uri)
    except (ArgumentError, ValueError) as err:
        raise unsupported from err
    if parsed.get_backend_name() not in MLFLOW_BACKENDS:
        raise unsupported
    _check_database(parsed, source, store="the runs")


def _check_server(uri: str, source: str) -> None:
    try:
        with urllib.request.urlopen(
            f"{uri.rstrip('/')}/health", timeout=CONNECT_SECONDS
        ) as response:
            response.read()
    except urllib.error.HTTPError:
        return  # it answered (401 behind basic auth, say): reachable
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        raise UsageError(
            f"{source}: the MLflow server at {uri} is unreachable ({err}). Start it "
            "(`make server`) or unset MLFLOW_TRACKING_URI to use sqlite:///mlruns/mlflow.db."
        ) from err


def _check_database(parsed: URL, source: str, *, store: str) -> None:
    _check_driver(parsed, source)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed, source, store=store)
    else:
        _check_reachable(parsed, source)


def _check_driver(parsed: URL, source: str) -> None:
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError as err:
        raise UsageError(
            f"{source}: SQLAlchemy knows no driver {parsed.drivername!r} ({_shown(parsed)}). "
            f"Use {parsed.get_backend_name()}:// or a driver SQLAlchemy documents."
        ) from err
    except ImportError as err:
        module = err.name or parsed.get_driver_name()
        package = _DRIVER_PACKAGES.get(module.split(".")[0], module)
        hint = " or postgresql+psycopg://" if parsed.get_backend_name() == "postgresql" else ""
        raise UsageError(
            f"{source}: {_shown(parsed)} needs the Python driver {module!r}, which is not "
            f"installed. Install it (pip install {package}), or name an installed driver in "
            f"the URL ({parsed.get_backend_name()}+DRIVER://...{hint})."
        ) from err


def _check_sqlite(parsed: URL, source: str, *, store: str) -> None:
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise UsageError(
            f"{source}: {_shown(parsed)} is an in-memory SQLite database: it lives only as long "
            f"as this process, so {store} would be lost when the sweep ends and no other process "
            "could join. Name a file, e.g. sqlite:///mlruns/optuna.db."
        )
    path = Path(database).expanduser()
    if path.is_dir():
        raise UsageError(
            f"{source}: {_shown(parsed)} names a directory, not a SQLite file. Name a file in "
            f"it, e.g. sqlite:///{path / 'optuna.db'}."
        )
    if not path.exists():
        folder = next(parent for parent in path.absolute().parents if parent.exists())
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            problem = "is a file, not a folder" if not folder.is_dir() else "is not writable"
            raise UsageError(
                f"{source}: {_shown(parsed)} cannot be created: {folder} {problem}. Choose "
                "another path."
            )
        return  # the store creates it (and its folders)
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_LOCK_SECONDS
        )
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.OperationalError as err:
        if "locked" in str(err):
            raise UsageError(
                f"{source}: {path} is locked by another process (waited "
                f"{SQLITE_LOCK_SECONDS} s to read it). Let that process finish, or stop it."
            ) from err
        raise UsageError(f"{source}: {path} cannot be opened ({err}).") from err
    except sqlite3.DatabaseError as err:
        raise UsageError(
            f"{source}: {path} is not a SQLite database ({err}). Name a database file."
        ) from err


def _check_reachable(parsed: URL, source: str) -> None:
    argument = _TIMEOUT_ARGUMENT.get(parsed.get_backend_name())
    engine = create_engine(
        parsed,
        poolclass=NullPool,
        connect_args={argument: CONNECT_SECONDS} if argument else {},
    )
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise UsageError(
            f"{source}: cannot connect to {_shown(parsed)} ({reason}). Check that the database "
            f"server runs and the URL is right (gave up after at most {CONNECT_SECONDS} s)."
        ) from err
    finally:
        engine.dispose()


def _shown(parsed: URL) -> str:
    return parsed.render_as_string(hide_password=True)


def checked_stores(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    """The Optuna storage URL and the MLflow tracking URI a command will use, from its
    ``--storage`` and ``--tracking-uri`` (None: the environment, then the defaults), each
    checked; a UsageError names what carried a bad one."""
    storage_url = resolve_storage(storage)
    tracking = resolve_tracking_uri(tracking_uri)
    check_storage_url(storage_url, source=origin(storage, STORAGE_FLAG, STORAGE_ENV))
    check_tracking_uri(tracking, source=origin(tracking_uri, TRACKING_FLAG, TRACKING_ENV))
    return storage_url, tracking
