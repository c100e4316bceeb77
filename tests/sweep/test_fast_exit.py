"""``sweep run`` ends without the interpreter's teardown, and loses nothing by it: every trial's
run, curve and the report reach the stores before the process is gone. ``-v`` prints the split
of the process's time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from sweep.perf import fast_exit
from sweep.perf.phases import PhaseClock
from tests.conftest import local_tracking_uri, tiny_space


@pytest.mark.slow
def test_a_whole_sweep_process_flushes_every_write_before_it_exits(workdir: Path) -> None:
    space = tiny_space(workdir, trials=3, epochs=4)
    result = subprocess.run(
        [sys.executable, "-m", "sweep", "run", "--space", str(space), "-v"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    split = result.stdout.strip().splitlines()[-1]
    assert split.startswith("time split of ")
    for phase in ("imports", "stores", "training", "Optuna", "MLflow", "report", "exit"):
        assert phase in split

    study = optuna.load_study(study_name="tiny", storage="sqlite:///mlruns/optuna.db")
    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED" and len(children) == len(study.trials) == 3
    assert "best_config.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    for child in children:
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "val_loss")) == 4


def test_an_inner_phase_is_not_charged_to_its_outer_phase() -> None:
    clock = PhaseClock()
    started = time.perf_counter()
    with clock.phase("report"):
        time.sleep(0.02)
        with clock.phase("MLflow"):
            time.sleep(0.1)
    outer = time.perf_counter() - started
    assert clock.seconds["MLflow"] >= 0.1
    assert 0.02 <= clock.seconds["report"] <= outer - 0.1
    assert "report" in clock.split() and "MLflow" in clock.split()


def test_stores_are_not_kept_for_an_exit_that_never_comes() -> None:
    # A notebook or a test runs sweeps without the `sweep` program's fast exit: their stores
    # must not pile up in the list of flushes, alive for the life of the process.
    fast_exit.flush_before_exit(lambda: None)
    assert fast_exit._flushes == []
