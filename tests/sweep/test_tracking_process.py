"""The ``sweep`` program's tracking process: MLflow and matplotlib load and work in a forked
child while the parent loads torch and trains. The stores end up as they did with MLflow in the
parent, the parent never loads MLflow or matplotlib, and a parent killed with kill -9 loses none
of the writes it handed over."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweep.perf.spare_cores import runnable_others, worth_a_second_process
from tests.conftest import local_tracking_uri, tiny_space, write_space

# Runs `sweep run` as the program does (cli.entry), and prints, as its last flush before the
# process ends, which of the tracking libraries this (the parent) process loaded.
PROGRAM = """
import sys
from sweep import cli
from sweep.perf import fast_exit
fast_exit.arm()
fast_exit.flush_before_exit(lambda: print("parent loaded:", sorted(
    name for name in ("mlflow", "matplotlib") if name in sys.modules), flush=True))
sys.argv = ["sweep", *sys.argv[1:]]
raise SystemExit(cli.entry())
"""


FIGURES = {
    "learning_curves.png",
    "lr_vs_batch_size.png",
    "cv_score_vs_batch_size.png",
    "time_and_memory_vs_batch_size.png",
    "optimization_history.png",
    "param_importances.png",
}


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {artifact.path for artifact in client.list_artifacts(run_id)}


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "loaded"), [("1", "[]"), ("0", "['matplotlib', 'mlflow']")])
def test_the_parent_never_loads_mlflow_and_the_stores_are_the_same(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, setting: str, loaded: str
) -> None:
    monkeypatch.setenv("SWEEP_TRACKING_PROCESS", setting)
    space = tiny_space(workdir, trials=3, epochs=4)
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, "run", "--space", str(space)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"parent loaded: {loaded}"

    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "FINISHED" and len(children) == 3
    files = _artifacts(client, parent.info.run_id)
    # every figure, drawn by the tracking process and its fork (or here), beside the parent's files
    assert {name for name in files if name.endswith(".png")} == FIGURES
    assert {"best_config.json", "batch_size_report.csv"} <= files
    assert parent.data.tags["mlflow.note.content"].startswith("#")  # the description
    assert parent.inputs.dataset_inputs[0].dataset.digest == parent.data.params["data_fingerprint"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "val_loss")) == 4
        assert child.data.tags["engine"] == "stacked"


SLOW_SPACE = """
name: killed
dataset: {source: iris, task: classification}
model: {hidden: [64]}
cv: {folds: 3, seed: 0}
training: {epochs: 60, device: cpu}
search:
  batch_size: [4]
  lr: {low: 0.001, high: 0.01}
  optimizer: [sgd]
sampler: {name: random, seed: 0}
pruner: none
budget: {trials: 40, group_size: 1}
"""


def _complete_trials(database: Path) -> list[int]:
    if not database.exists():
        return []
    with sqlite3.connect(database, timeout=30) as connection:
        try:
            rows = connection.execute("SELECT number FROM trials WHERE state = 'COMPLETE'")
            return sorted(number for (number,) in rows)
        except sqlite3.OperationalError:  # the tables are not there yet
            return []


def _children(pid: int) -> list[int]:
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in listed.stdout.split()]


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its new parent to reap it counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


@pytest.mark.slow
def test_a_parent_killed_with_kill_9_loses_none_of_the_writes_it_handed_over(
    workdir: Path,
) -> None:
    space = write_space(workdir, "killed", SLOW_SPACE)
    env = {**os.environ, "SWEEP_TRACKING_PROCESS": "1"}  # always, however busy the host is
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", "--space", str(space)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    database = workdir / "mlruns" / "optuna.db"
    deadline = time.monotonic() + 240
    while len(_complete_trials(database)) < 2 and time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.stderr.read() if sweep.stderr else ""
        time.sleep(0.1)
    (tracking,) = _children(sweep.pid)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=30)
    done = _complete_trials(database)  # no trial ends after the kill
    assert 2 <= len(done) < 40

    deadline = time.monotonic() + 120  # the child sends what it holds, then exits on its own
    while not _gone(tracking) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(tracking)

    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    by_trial = {
        int(r.data.tags["optuna.trial_number"]): r
        for r in runs
        if "optuna.trial_number" in r.data.tags
    }
    for number in done:
        run = by_trial[number]
        assert run.info.status == "FINISHED", number
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 60
        assert "cv_val_loss" in run.data.metrics


def test_the_host_must_have_two_free_cores_for_the_tracking_process() -> None:
    assert runnable_others("0.10 0.20 0.30 1/300 4242") == 0  # only the reader runs
    assert runnable_others("2.38 2.49 2.06 3/136 13610") == 2
    assert worth_a_second_process(2.0) and worth_a_second_process(15.0)
    assert not worth_a_second_process(1.0)  # one other busy process on 2 cores


@pytest.mark.slow
def test_a_bad_setting_exits_2_and_creates_nothing(workdir: Path) -> None:
    space = tiny_space(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "sweep", "run", "--space", str(space)],
        capture_output=True,
        text=True,
        env={**os.environ, "SWEEP_TRACKING_PROCESS": "yes"},
    )
    assert result.returncode == 2
    assert "SWEEP_TRACKING_PROCESS='yes'" in result.stderr and "auto, 1" in result.stderr
    assert not (workdir / "mlruns").exists()
