"""A tracking server killed mid-sweep costs a bounded time and nothing else: training goes on,
the sweep meets its budget and exits 0 saying what it spooled, and the next ``sweep report``
puts every trial's run, with its curves, into MLflow once the server is back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweep.tracking.mlflow_writer import RETRY_DELAYS_SECONDS
from tests.conftest import mlflow_rest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TRIALS, EPOCHS = 5, 30


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A real ``mlflow server`` on a SQLite backend, which the test can kill and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{self.folder}/server.db",
                "--artifacts-destination", str(self.folder / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its workers die with it
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                assert self.process.poll() is None, "mlflow server exited while starting"
                time.sleep(0.5)
        self.kill()
        pytest.fail("mlflow server did not answer /health within 120 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def rest(self, path: str, payload: dict, *, method: str = "POST") -> dict:
        return mlflow_rest(self.url, path, payload, method=method)

    def runs(self, experiment_name: str) -> list[dict]:
        try:
            found = self.rest(
                "experiments/get-by-name", {"experiment_name": experiment_name}, method="GET"
            )
        except OSError:  # not created yet (404)
            return []
        experiment_id = found["experiment"]["experiment_id"]
        return self.rest("runs/search", {"experiment_ids": [experiment_id]}).get("runs", [])


def _tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


@pytest.fixture
def server(tmp_path: Path):
    served = Server(tmp_path)
    served.start()
    yield served
    served.kill()


def _sweep(*args: str, cwd: Path) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return [sys.executable, "-m", "sweep", *args], {"cwd": cwd, "env": env}


def test_a_server_killed_mid_sweep_costs_the_retry_budget_and_nothing_else(
    tmp_path: Path, server: Server
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    storage = f"sqlite:///{tmp_path}/optuna.db"
    stores = ["--storage", storage, "--tracking-uri", server.url]
    command, options = _sweep(
        "run", "--space", "quick", "--trials", str(TRIALS), "--epochs", str(EPOCHS),
        "--group-size", "1", *stores, cwd=work,
    )  # fmt: skip
    sweep = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options
    )
    deadline = time.monotonic() + 180
    while not any("mlflow.parentRunId" in _tags(run) for run in server.runs("quick")):
        assert sweep.poll() is None, "the sweep ended before its first trial's run appeared"
        assert time.monotonic() < deadline, "no trial run appeared within 180 s"
        time.sleep(0.1)
    server.kill()
    killed = time.monotonic()
    output, _ = sweep.communicate(timeout=600)
    after_kill = time.monotonic() - killed

    assert sweep.returncode == 0, output
    assert "Traceback" not in output
    # One retry budget for the whole outage, not one per write (nor MLflow's own minutes).
    budget = sum(RETRY_DELAYS_SECONDS)
    assert after_kill < budget + 60, f"{after_kill:.0f} s after the kill:\n{output}"
    assert "wait in" in output and "mlflow_spool.jsonl" in output, output
    spool = work / "mlruns" / "mlflow_spool.jsonl"
    assert spool.exists()
    study = optuna.load_study(study_name="quick", storage=storage)
    states = [trial.state for trial in study.trials]
    assert TrialState.RUNNING not in states
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == TRIALS

    server.start()
    command, options = _sweep("report", "--study", "quick", *stores, cwd=work)
    report = subprocess.run(command, capture_output=True, text=True, timeout=600, **options)
    assert report.returncode == 0, report.stdout + report.stderr
    assert not spool.exists(), spool.read_text()  # every spooled write went out
    assert not spool.with_name(spool.name + ".rejected").exists()

    runs = server.runs("quick")
    children = [run for run in runs if "mlflow.parentRunId" in _tags(run)]
    [parent] = [run for run in runs if "mlflow.parentRunId" not in _tags(run)]
    assert parent["info"]["status"] == "FINISHED"
    numbers = sorted(int(_tags(run)["optuna.trial_number"]) for run in children)
    assert numbers == [trial.number for trial in study.trials if trial.state.is_finished()]
    for run in children:
        assert run["info"]["status"] in ("FINISHED", "KILLED"), run["info"]
        assert _tags(run)["mlflow.parentRunId"] == parent["info"]["run_id"]
        history = server.rest(
            "metrics/get-history",
            {"run_id": run["info"]["run_id"], "metric_key": "val_loss"},
            method="GET",
        )["metrics"]
        assert [m["step"] for m in history] == list(range(1, EPOCHS + 1)), run["info"]


def test_mlflow_http_retries_are_capped_unless_the_user_set_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sweep.tracking.mlflow_writer import cap_mlflow_http_retries

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # the user's choice
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    cap_mlflow_http_retries()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"


class _Outage:
    """A real MLflow client whose calls fail while ``down`` is set, as a lost server's do."""

    def __init__(self, client) -> None:  # noqa: ANN001 - an MlflowClient
        self.client, self.down = client, False

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            if self.down:
                raise ConnectionError("Connection refused")
            return method(*args, **kwargs)

        return call


def test_an_offline_writer_spools_at_once_then_sends_the_spool_when_the_store_answers(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweep.tracking import mlflow_writer
    from sweep.tracking.mlflow_sink import MlflowSink
    from tests.conftest import local_tracking_uri

    monkeypatch.setattr(mlflow_writer, "RETRY_DELAYS_SECONDS", (0.01,))
    sink = MlflowSink(local_tracking_uri(), "outage")
    sink.open_study(existing_run_id=None, tags={"study": "outage"})
    outage = _Outage(sink.client)
    sink.writer.client = outage
    outage.down = True
    first = sink.start_trial(0, {"lr": 0.1}, {})  # its run cannot be created: spooled
    sink.log_epoch(first, 1, {"val_loss": 0.5})
    sink.end_trial(first, "FINISHED")
    sink.drain()
    assert sink.writer.offline and sink.run_id(first) == ""
    started = time.monotonic()
    second = sink.start_trial(1, {"lr": 0.2}, {})  # offline: to the spool at once, no retries
    sink.drain()
    assert time.monotonic() - started < 1.0
    assert sink.writer.spooled == 6  # two creations and their params, one batch, one status

    outage.down = False
    monkeypatch.setattr(mlflow_writer, "PROBE_EVERY_SECONDS", 0.0)
    sink.log_epoch(second, 1, {"val_loss": 0.25})
    sink.end_trial(second, "FINISHED")  # the probe sends the spool first, then this, live
    sink.drain()
    assert not sink.writer.offline and not sink.writer.spool.exists()
    for handle, loss in ((first, 0.5), (second, 0.25)):
        run = sink.client.get_run(sink.run_id(handle))
        assert run.info.status == "FINISHED"
        assert run.data.metrics["val_loss"] == loss
        assert run.data.tags["mlflow.parentRunId"] == sink.parent_run_id
