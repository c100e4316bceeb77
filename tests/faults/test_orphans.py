"""No orphaned trial: an error after ``study.ask()`` fails the trial, with its reason, before it
propagates; a trial whose worker is gone is failed and re-queued when a sweep resumes, on SQLite
without waiting for its heartbeat to go stale; and the study's run ends as the study does."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.commands.run import RunOptions, run_sweep
from sweep.study import heartbeats
from sweep.study.attrs import FAIL_REASON_ATTR, WORKER_ATTR
from sweep.study.heartbeats import fail_stale_trials
from sweep.study.resume import make_pruner, make_sampler, make_storage
from sweep.tracking.memory_sink import MemorySink
from tests.conftest import tiny_space
from tests.sweep.loop_helpers import PARENT_TAGS, LoopWorld, loop_spec, training_problem

ROOT = Path(__file__).resolve().parents[2]


class _FaultySink(MemorySink):
    """A tracking sink whose ``method`` raises ``error`` on its ``at``-th call."""

    def __init__(self, method: str, error: BaseException, at: int = 2) -> None:
        super().__init__()
        self.open_study(existing_run_id=None, tags=PARENT_TAGS)
        self.method, self.error, self.at, self.calls = method, error, at, 0

    def _maybe_fail(self, method: str) -> None:
        if method == self.method:
            self.calls += 1
            if self.calls == self.at:
                raise self.error

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        self._maybe_fail("start_trial")
        return super().start_trial(number, params, tags)

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        self._maybe_fail("log_epoch")
        super().log_epoch(run_id, step, metrics)

    def end_trial(self, run_id: str, status: str, **kwargs: Any) -> None:
        self._maybe_fail("end_trial")
        super().end_trial(run_id, status, **kwargs)


def _sqlite_world(folder: Path, sink: MemorySink, *, sampler: str = "grid") -> LoopWorld:
    spec = loop_spec(folder, trials=4, group_size=4, sampler=sampler)
    study = optuna.create_study(
        storage=make_storage(f"sqlite:///{folder}/optuna.db"),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        study_name="orphans",
    )
    return LoopWorld(spec, training_problem(spec), study, sink)


ERRORS = {
    "mlflow store locked": RuntimeError("(sqlite3.OperationalError) database is locked"),
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "server lost": ConnectionError("tracking server unreachable"),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["start_trial", "log_epoch", "end_trial"])
@pytest.mark.parametrize("cause", list(ERRORS))
def test_an_error_after_ask_fails_every_asked_trial_with_its_reason(
    tmp_path: Path, method: str, cause: str
) -> None:
    error = ERRORS[cause]
    world = _sqlite_world(tmp_path, _FaultySink(method, error))
    with pytest.raises(type(error)):
        world.run()
    assert not world.trials(TrialState.RUNNING)
    failed = world.trials(TrialState.FAIL)
    assert failed, "the error was injected after ask(): some trial must have failed"
    for trial in failed:
        assert str(error) in trial.user_attrs[FAIL_REASON_ATTR], trial.user_attrs


@pytest.mark.slow
def test_a_storage_write_failing_right_after_ask_still_fails_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Random: the grid sampler writes a system attr inside ask(); a trial orphaned in there has
    # no owner and no heartbeat, and is failed after the grace period (test below).
    world = _sqlite_world(tmp_path, MemorySink(), sampler="random")
    world.sink.open_study(existing_run_id=None, tags=PARENT_TAGS)
    storage = world.study._storage

    def locked(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(storage, "set_trial_system_attr", locked)  # claiming the trial fails
    with pytest.raises(RuntimeError, match="locked"):
        world.run()
    [trial] = world.trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[FAIL_REASON_ATTR] == "RuntimeError: database is locked"


# -- a dead worker's trial, on SQLite

ORPHAN = """
import os, sys, optuna
from sweep.study.heartbeats import claim_trial
from sweep.study.resume import make_storage
study = optuna.load_study(study_name=sys.argv[2], storage=make_storage(sys.argv[1]))
trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True)})
claim_trial(study, trial)
os._exit(1)  # dies between ask and tell: kill -9, a crash, the OOM killer
"""


def _orphan(storage_url: str, study_name: str) -> None:
    """A real worker process that asks a trial, claims it and dies."""
    subprocess.run([sys.executable, "-c", ORPHAN, storage_url, study_name], cwd=ROOT, check=False)


@pytest.mark.slow
def test_a_dead_workers_trial_on_sqlite_is_failed_and_requeued_without_waiting(
    tmp_path: Path,
) -> None:
    storage_url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(storage=make_storage(storage_url), study_name="dead")
    _orphan(storage_url, "dead")
    [orphan] = study.get_trials(states=(TrialState.RUNNING,))
    assert orphan.system_attrs[WORKER_ATTR]["pid"] != os.getpid()
    fail_stale_trials(study)  # the heartbeat is seconds old: Optuna alone would wait 3 minutes
    failed = study.trials[orphan.number]
    assert failed.state == TrialState.FAIL
    assert "is gone" in failed.user_attrs[FAIL_REASON_ATTR]
    [retry] = study.get_trials(states=(TrialState.WAITING,))
    assert retry.params == orphan.params
    assert FAIL_REASON_ATTR not in retry.user_attrs and WORKER_ATTR not in retry.system_attrs


def test_a_live_workers_trial_is_left_running(tmp_path: Path) -> None:
    study = optuna.create_study(
        storage=make_storage(f"sqlite:///{tmp_path}/optuna.db"), study_name="live"
    )
    trial = study.ask()
    heartbeats.claim_trial(study, trial)
    owner = study.trials[0].system_attrs[WORKER_ATTR]
    parent = os.getppid()  # alive, and not this process
    alive = {**owner, "pid": parent, "pid_start": heartbeats._process_start(parent)}
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, alive)
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING


def test_a_running_trial_with_no_heartbeat_and_no_owner_is_failed_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(
        storage=make_storage(f"sqlite:///{tmp_path}/optuna.db"), study_name="old"
    )
    unclaimed = study.ask()  # as an older version left it: no owner, no heartbeat
    beating = study.ask()
    heartbeats.heartbeat_recorder(study)(beating)
    monkeypatch.setattr(heartbeats, "HEARTBEAT_SECONDS", 0)  # the grace period has passed
    fail_stale_trials(study)
    assert study.trials[unclaimed.number].state == TrialState.FAIL
    assert "no heartbeat" in study.trials[unclaimed.number].user_attrs[FAIL_REASON_ATTR]
    assert study.trials[beating.number].state == TrialState.RUNNING  # its heartbeat judges it


@pytest.mark.slow
def test_a_resume_after_an_orphan_runs_the_whole_budget_and_finishes_the_study_run(
    workdir: Path,
) -> None:
    """The review's case: a resume said "3 to run", ran 2, and left 1 RUNNING and the study's
    run RUNNING."""
    space = tiny_space(workdir, name="resumed", trials=2, epochs=2)
    storage, tracking = f"sqlite:///{workdir}/optuna.db", f"sqlite:///{workdir}/mlflow.db"
    run_sweep(RunOptions(space=str(space), storage=storage, tracking_uri=tracking))
    _orphan(storage, "resumed")
    outcome = run_sweep(
        RunOptions(
            space=str(space),
            storage=storage,
            tracking_uri=tracking,
            overrides={"budget.trials": ("--trials", 4)},
        )
    )
    study = optuna.load_study(study_name="resumed", storage=storage)
    states = [trial.state for trial in study.trials]
    assert TrialState.RUNNING not in states
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 4
    assert outcome.trials_run == 2
    parent = MlflowClient(tracking).get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
