"""The stores are checked before either is touched: each bad URL is a UsageError naming what
carried it, and nothing is created. The real drivers, SQLite files and PostgreSQL server."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import torch

from sweep.cli import main
from sweep.errors import UsageError
from sweep.guards import store_checks
from sweep.guards.gpus import parse_gpus
from sweep.guards.store_checks import (
    check_storage_url,
    check_tracking_uri,
    checked_stores,
    origin,
)

REFUSED_PORT = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a database URL"),
        ("redis://localhost", "backend 'redis'"),
        ("mssql://sa@127.0.0.1/x", "backend 'mssql'"),  # MLflow takes it, Optuna's storage not
        ("sqlite://", "in-memory SQLite database"),
        ("sqlite:///:memory:", "the study would be lost"),
        ("mysql://root@127.0.0.1/x", "driver 'MySQLdb', which is not installed"),
        ("mysql+pymysql://root@127.0.0.1/x", "pip install pymysql"),
        ("postgresql+nosuchdriver://u@h/x", "no driver 'postgresql+nosuchdriver'"),
        (REFUSED_PORT, "cannot connect to postgresql://postgres@127.0.0.1:1/nowhere"),
    ],
)
def test_a_storage_that_cannot_work_is_refused(workdir: Path, url: str, expected: str) -> None:
    with pytest.raises(UsageError, match="^--storage: ") as caught:
        check_storage_url(url)
    assert expected in str(caught.value)
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("databricks", "'databricks' is not supported"),
        ("databricks://profile", "is not supported"),
        ("file:///tmp/old-mlruns", "the old ./mlruns file store"),
        ("./mlruns", "is not supported"),
        ("sqlite://", "the runs would be lost"),
        ("mssql://sa@127.0.0.1/x", "driver 'pyodbc'"),
        ("mysql+pymysql://root@127.0.0.1/x", "driver 'pymysql'"),
        (REFUSED_PORT, "cannot connect"),
        ("http://127.0.0.1:9", "unreachable"),
    ],
)
def test_a_tracking_store_that_cannot_work_is_refused(
    workdir: Path, uri: str, expected: str
) -> None:
    with pytest.raises(UsageError, match="^--tracking-uri: ") as caught:
        check_tracking_uri(uri)
    assert expected in str(caught.value)
    assert list(workdir.iterdir()) == []


def test_a_server_that_refuses_connections_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(UsageError, match="Connection refused"):
        check_storage_url(REFUSED_PORT)
    assert time.perf_counter() - started < 2 * store_checks.CONNECT_SECONDS


def test_every_database_url_mlflow_accepts_passes(workdir: Path, postgres_url: str) -> None:
    for uri in (
        postgres_url,
        postgres_url.replace("postgresql://", "postgresql+psycopg://"),
        f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}",
    ):
        check_tracking_uri(uri)
        check_storage_url(uri)
    assert list(workdir.iterdir()) == []  # a new SQLite file is left to the store to create


def test_a_directory_named_as_a_sqlite_file_is_refused(workdir: Path) -> None:
    (workdir / "stores").mkdir()
    with pytest.raises(UsageError, match="names a directory, not a SQLite file"):
        check_storage_url(f"sqlite:///{workdir / 'stores'}")
    with pytest.raises(UsageError, match="names a directory"):
        check_tracking_uri(f"sqlite:///{workdir / 'stores'}")


def test_a_file_that_is_not_sqlite_is_refused(workdir: Path) -> None:
    (workdir / "notes.db").write_text("these are notes, not a database\n" * 100)
    with pytest.raises(UsageError, match="is not a SQLite database"):
        check_storage_url(f"sqlite:///{workdir / 'notes.db'}")


def test_a_locked_sqlite_file_is_refused_after_the_wait(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_checks, "SQLITE_LOCK_SECONDS", 0.2)  # the budget, shortened
    path = workdir / "optuna.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UsageError, match="is locked by another process"):
            check_storage_url(f"sqlite:///{path}")
    finally:
        holder.execute("COMMIT")
        holder.close()
    check_storage_url(f"sqlite:///{path}")  # free again: accepted


def test_an_existing_sqlite_store_being_read_is_not_locked(workdir: Path) -> None:
    path = workdir / "optuna.db"
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("CREATE TABLE t (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a shared lock, as a running sweep's read
    try:
        check_storage_url(f"sqlite:///{path}")
    finally:
        reader.execute("COMMIT")
        reader.close()


def test_messages_name_what_carried_the_url(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert origin("sqlite://", "--storage", "SWEEP_STORAGE") == "--storage"
    assert origin(None, "--storage", "SWEEP_STORAGE") == "the default --storage"
    monkeypatch.setenv("SWEEP_STORAGE", "sqlite://")
    assert origin(None, "--storage", "SWEEP_STORAGE") == "$SWEEP_STORAGE"
    with pytest.raises(UsageError, match=r"^\$SWEEP_STORAGE: sqlite:// is an in-memory"):
        checked_stores(None, None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks")
    with pytest.raises(UsageError, match=r"^\$MLFLOW_TRACKING_URI: 'databricks'"):
        checked_stores(f"sqlite:///{workdir / 'optuna.db'}", None)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--storage", "sqlite://"], "--storage: sqlite:// is an in-memory SQLite database"),
        (["--storage", "mysql://root@127.0.0.1/x"], "--storage: mysql://root@127.0.0.1/x needs"),
        (["--tracking-uri", "databricks"], "--tracking-uri: 'databricks' is not supported"),
        (["--folds", "100000"], "--folds: iris: Cannot have number of folds n_folds=100000"),
        (["--seed", str(2**70)], "--seed (cv.seed) must be an integer from 0 to 4294967295"),
        (
            ["--dataset", "d" * 5000 + ".csv", "--target", "y"],  # too long for the system
            "--dataset (dataset.source) must be an existing CSV file",
        ),
    ],
)
def test_sweep_run_exits_2_naming_the_flag(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code = main(["run", "--space", "quick", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err and "quick.yaml" not in err, err
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("text", ["0", "all", "0,1"])
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_without_cuda_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match=f"^--gpus {text}: no CUDA device is visible"):
        parse_gpus(text)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpus_beyond_the_device_count_are_refused() -> None:
    count = torch.cuda.device_count()
    assert parse_gpus("all") == tuple(range(count))
    assert parse_gpus("0") == (0,)
    with pytest.raises(UsageError, match=f"has {count} CUDA device"):
        parse_gpus(str(count))


@pytest.mark.parametrize(("text", "rule"), [("a,b", "indices like 0,1"), ("0,0", "distinct")])
def test_gpus_that_are_not_indices_are_refused(text: str, rule: str) -> None:
    with pytest.raises(UsageError, match=rule):
        parse_gpus(text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_sweep_run_with_gpus_and_no_cuda_creates_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--space", "quick", "--gpus", "0"])
    assert code == 2 and "--gpus 0: no CUDA device" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


@pytest.mark.slow
def test_a_sweep_logs_to_a_postgresql_psycopg_tracking_uri(
    workdir: Path, postgres_url: str
) -> None:
    """The URL form SQLAlchemy names with its driver, as MLflow accepts it: a whole sweep logs
    its study run and every trial run there."""
    from mlflow.tracking import MlflowClient

    from tests.conftest import tiny_space

    tracking = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    space = tiny_space(workdir, name="pg_tracked", trials=2)
    assert main(["run", "--space", str(space), "--tracking-uri", tracking]) == 0
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("pg_tracked")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(trials) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(client.get_metric_history(r.info.run_id, "val_loss") for r in trials)
