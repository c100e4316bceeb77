"""A sweep against a real MLflow tracking server, started by the test, over its REST API."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sweep.best_config import load_best_config
from sweep.commands.run import RunOptions, run_sweep
from tests.conftest import mlflow_rest, tiny_space

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path: Path):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination", str(tmp_path / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None, "mlflow server exited while starting"
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("mlflow server did not answer /health within 90 s")
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_server_serves_the_parent_and_nested_trial_runs(
    workdir: Path, tracking_server: str, postgres_url: str
) -> None:
    space = tiny_space(workdir, name="served", trials=3, epochs=2)
    outcome = run_sweep(
        RunOptions(space=str(space), storage=postgres_url, tracking_uri=tracking_server)
    )
    experiment = mlflow_rest(
        tracking_server, "experiments/get-by-name", {"experiment_name": "served"}, method="GET"
    )
    experiment_id = experiment["experiment"]["experiment_id"]
    runs = mlflow_rest(tracking_server, "runs/search", {"experiment_ids": [experiment_id]})["runs"]
    tags = [{tag["key"]: tag["value"] for tag in run["data"].get("tags", [])} for run in runs]
    parents = [run for run, tag in zip(runs, tags) if "mlflow.parentRunId" not in tag]
    children = [tag for tag in tags if "mlflow.parentRunId" in tag]
    assert len(parents) == 1 and len(children) == 3
    assert {child["mlflow.parentRunId"] for child in children} == {outcome.parent_run_id}
    assert all(run["info"]["status"] == "FINISHED" for run in runs)
    history = mlflow_rest(
        tracking_server,
        "metrics/get-history",
        {"run_id": runs[tags.index(children[0])]["info"]["run_id"], "metric_key": "val_loss"},
        method="GET",
    )
    assert [m["step"] for m in history["metrics"]] == [1, 2]
    best = load_best_config(f"runs:/{outcome.parent_run_id}", tracking_uri=tracking_server)
    assert best.provenance.study == "served"
    assert not (workdir / "mlruns").exists()  # nothing local: the server holds it all
