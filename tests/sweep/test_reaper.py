"""The reaper finds a dead worker's run by its tags (its trial wrote nothing to Optuna but being
asked) and leaves the runs of the worker that calls it alone; a real kill -9 on SQLite too."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.commands.finish import reap
from sweep.tracking.mlflow_sink import MlflowSink
from tests.conftest import write_space
from tests.sweep.test_distributed import SLOW_SPACE, _runs, _sweep, _wait_for_running_trial


@pytest.mark.slow
def test_a_dead_workers_run_is_reaped_and_the_callers_own_runs_are_left(workdir: Path) -> None:
    tracking = f"sqlite:///{workdir}/mlflow.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{workdir}/optuna.db")
    dead = MlflowSink(tracking, "s")
    parent = dead.open_study(existing_run_id=None, tags={"study": "s"})
    killed = study.ask()
    dead_run = dead.start_trial(killed.number, {"lr": 0.1}, {"study": "s"})
    dead.drain()
    dead_run = dead.run_id(dead_run)
    study.tell(killed, state=TrialState.FAIL)  # as fail_stale_trials does once beats stop

    live = MlflowSink(tracking, "s")
    assert live.open_study(existing_run_id=parent, tags={"study": "s"}) == parent
    told = study.ask()
    own = live.start_trial(told.number, {"lr": 0.2}, {"study": "s"})
    study.tell(told, 1.0)  # told; its run is ended by this worker's writer, not by the reaper
    assert reap(study, live) == 1

    client = MlflowClient(tracking)
    reaped = client.get_run(dead_run)
    assert reaped.info.status == "FAILED"
    assert reaped.data.tags["reaped"] == "trial ended FAIL"
    own_id = live.run_id(own)
    assert "reaped" not in client.get_run(own_id).data.tags
    live.end_trial(own, "FINISHED")
    live.drain()
    assert client.get_run(own_id).info.status == "FINISHED"
    assert reap(study, live) == 0


@pytest.mark.slow
def test_kill_9_on_sqlite_then_resume_reaps_the_dead_trials_run(workdir: Path) -> None:
    space = write_space(workdir, "slow", SLOW_SPACE.replace("trials: 4", "trials: 2"))
    storage, tracking = f"sqlite:///{workdir}/optuna.db", f"sqlite:///{workdir}/mlflow.db"
    env = {"SWEEP_HEARTBEAT_SECONDS": "1"}
    args = ["run", "--space", str(space), "--storage", storage, "--tracking-uri", tracking]
    worker = _sweep(*args, env=env)
    _wait_for_running_trial(storage, "slow")
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)
    killed = optuna.load_study(study_name="slow", storage=storage).get_trials(
        states=(TrialState.RUNNING,)
    )
    assert len(killed) == 1

    time.sleep(4)  # past the heartbeat's grace period
    resumed = _sweep(*args, env=env)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    _parents, children = _runs(tracking, "slow")
    by_number = {c.data.tags["optuna.trial_number"]: c for c in children}
    dead = by_number.pop(str(killed[0].number))
    assert dead.info.status == "FAILED" and dead.data.tags["reaped"] == "trial ended FAIL"
    assert all(
        c.info.status == "FINISHED" and "reaped" not in c.data.tags for c in by_number.values()
    )
