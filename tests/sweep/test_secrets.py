"""A password in a store's URL stays a secret: masked wherever a URL is shown or stored, and never
on a worker's command line. The last test proves it on a real PostgreSQL role with a password."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from sweep.commands.launcher import worker_command, worker_env
from sweep.commands.terminal import say
from sweep.provenance.redact import redact_text, redact_url
from tests.conftest import postgres_admin


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://sweep:s3cret@db:5432/optuna", "postgresql://sweep:***@db:5432/optuna"),
        (
            "postgresql+psycopg://sweep:p%40ss@db/optuna",
            "postgresql+psycopg://sweep:***@db/optuna",
        ),
        ("mysql+pymysql://root:pw@127.0.0.1/mlflow", "mysql+pymysql://root:***@127.0.0.1/mlflow"),
        ("https://alice:tok3n@mlflow.example.org", "https://alice:***@mlflow.example.org"),
        ("http://bob:pw@127.0.0.1:5000/path", "http://bob:***@127.0.0.1:5000/path"),
        ("postgresql://sweep@db:5432/optuna", "postgresql://sweep@db:5432/optuna"),
        ("sqlite:///mlruns/optuna.db", "sqlite:///mlruns/optuna.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"storage: {url} (experiment 1)") == f"storage: {shown} (experiment 1)"


def test_every_url_in_a_text_is_masked() -> None:
    text = "a postgresql://u:one@h/db and 'http://v:two@h:5000', then sqlite:///x.db"
    assert (
        redact_text(text)
        == "a postgresql://u:***@h/db and 'http://v:***@h:5000', then sqlite:///x.db"
    )


def test_what_the_sweep_says_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    say("optuna storage: postgresql://sweep:hunter2@db/optuna")
    logging.getLogger("sweep.tracking.mlflow_writer").warning(
        "could not reach http://alice:hunter2@host:5000"
    )
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "postgresql://sweep:***@db/optuna" in out and "http://alice:***@host:5000" in out


class _Plan:  # the fields worker_command and worker_env read
    study_name = "s"
    storage_url = "postgresql://sweep:hunter2@db/optuna"
    tracking_uri = "http://alice:hunter2@host:5000"
    spec = SimpleNamespace(training=SimpleNamespace(threads=3))


def test_workers_get_the_urls_from_the_environment_not_argv() -> None:
    argv = worker_command(_Plan(), "cpu")  # type: ignore[arg-type]
    assert not any("hunter2" in part for part in argv)
    assert "--storage" not in argv and "--tracking-uri" not in argv
    assert argv[-2:] == ["--threads", "3"]  # what a worker needs goes in argv, secrets do not
    env = worker_env(_Plan())  # type: ignore[arg-type]
    assert env["SWEEP_STORAGE"] == _Plan.storage_url
    assert env["MLFLOW_TRACKING_URI"] == _Plan.tracking_uri


# -- the real thing: a PostgreSQL role with a password, two worker processes


@pytest.fixture
def password_role():
    """A PostgreSQL role with a random password owning two fresh databases (Optuna, MLflow);
    yields ``(password, storage URL, tracking URI, admin URL)`` and drops all three after."""
    from sqlalchemy import text

    admin_url, admin = postgres_admin()
    suffix = uuid.uuid4().hex[:10]
    role, optuna_db, mlflow_db = f"sweep_secret_{suffix}", f"optuna_{suffix}", f"mlflow_{suffix}"
    password = f"pw{secrets.token_hex(12)}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        connection.execute(text(f"CREATE DATABASE {optuna_db} OWNER {role}"))
        connection.execute(text(f"CREATE DATABASE {mlflow_db} OWNER {role}"))
    host = admin_url.split("@", 1)[1].rsplit("/", 1)[0]  # 127.0.0.1:5432
    try:
        yield (
            password,
            f"postgresql://{role}:{password}@{host}/{optuna_db}",
            f"postgresql://{role}:{password}@{host}/{mlflow_db}",
            admin_url.rsplit("/", 1)[0],
        )
    finally:
        with admin.connect() as connection:
            for name in (optuna_db, mlflow_db):
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def _sample_process_list(lines: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        lines.extend(listing.splitlines())
        time.sleep(0.2)


def _dump(admin_root: str, database: str) -> str:
    """Every row of every table of ``database``, as text (pg_dump where it is installed)."""
    url = f"{admin_root}/{database}"
    if shutil.which("pg_dump"):
        return subprocess.run(
            ["pg_dump", "--data-only", url], capture_output=True, text=True, check=True
        ).stdout
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            return "\n".join(
                str(row)
                for table in list(tables)
                for row in connection.execute(text(f'SELECT * FROM "{table}"'))
            )
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_two_worker_sweep_leaves_the_password_nowhere(workdir: Path, password_role) -> None:
    password, storage, tracking, admin_root = password_role
    env = {**os.environ, "SWEEP_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
    out_file = workdir / "terminal.txt"
    processes: list[str] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_process_list, args=(processes, stop), daemon=True)
    sampler.start()
    with open(out_file, "w") as out:
        sweep = subprocess.run(
            [sys.executable, "-m", "sweep", "run", "--space", "quick", "--trials", "4"]
            + ["--epochs", "2", "--workers", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            timeout=300,
        )
    stop.set()
    sampler.join()
    terminal = out_file.read_text()
    assert sweep.returncode == 0, terminal
    workers = [line for line in processes if " sweep worker " in f"{line} "]
    assert workers, "the process list was never sampled while a worker ran"
    assert not [line for line in processes if password in line]
    assert password not in terminal
    assert "4 trial(s)" in terminal  # the sweep ran to its budget and printed its summary
    optuna_dump = _dump(admin_root, storage.rsplit("/", 1)[1])
    mlflow_dump = _dump(admin_root, tracking.rsplit("/", 1)[1])
    assert "recommended_trial" in optuna_dump and "mlflow.note.content" in mlflow_dump
    assert password not in optuna_dump
    assert password not in mlflow_dump
    assert redact_url(storage) in mlflow_dump  # the study run's storage tag, masked
    for path in workdir.rglob("*"):  # mlruns/ (artifacts, spool), anything written here
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
