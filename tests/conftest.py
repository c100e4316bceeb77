"""Shared fixtures: every test that touches the stores runs in its own empty folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every `sweep` program a test starts forks its tracking process, as on a host with cores to
# spare, whatever the load of the machine running the tests (a test may set it otherwise).
os.environ.setdefault("SWEEP_TRACKING_PROCESS", "1")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with the default SQLite stores (no env overrides)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SWEEP_STORAGE", raising=False)
    return tmp_path


def local_tracking_uri() -> str:
    """The default MLflow store of the working directory, as an absolute URI (MLflow caches
    stores by URI: a relative one would name the folder of the test that first used it)."""
    return f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}"


def write_space(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


TINY_SPACE = """
name: {name}
dataset: {{source: iris}}
model: {{hidden: [8]}}
cv: {{folds: 3, seed: 0}}
training: {{epochs: {epochs}, device: cpu}}
search:
  batch_size: [16, full]
  lr: {lr}
  optimizer: [{optimizers}]
sampler: {{name: random, seed: 0}}
pruner: none
budget: {{trials: {trials}}}
"""


def tiny_space(
    folder: Path,
    *,
    name: str = "tiny",
    epochs: int = 3,
    trials: int = 3,
    lr: str = "{low: 0.001, high: 0.1}",
    optimizers: str = "sgd, adam",
) -> Path:
    """A search space small enough for an end-to-end test in about a second."""
    text = TINY_SPACE.format(name=name, epochs=epochs, trials=trials, lr=lr, optimizers=optimizers)
    return write_space(folder, name, text)


POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin():
    """``(admin URL, AUTOCOMMIT engine)`` of the test PostgreSQL server.

    Outside CI the calling test is skipped when no server answers; in CI (``CI`` set) that is a
    failure, since .ci/run starts the server.
    """
    import os

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin_url = os.environ.get("SWEEP_TEST_POSTGRES", POSTGRES_ADMIN_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as err:
        admin.dispose()
        message = f"no PostgreSQL server answers at {admin_url}: {err.orig}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must start it: see .ci/run)")
        pytest.skip(message)
    return admin_url, admin


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import uuid

    from sqlalchemy import text

    admin_url, admin = postgres_admin()
    name = f"sweep_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def mlflow_rest(url: str, path: str, payload: dict, *, method: str = "POST") -> dict:
    """One call of a tracking server's REST API (``/api/2.0/mlflow/<path>``), as a browser or
    another client would make it; raises OSError (HTTPError) on a 4xx/5xx answer."""
    import json
    import urllib.parse
    import urllib.request

    if method == "GET":
        query = urllib.parse.urlencode(payload)
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}?{query}")
    else:
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
