"""Many workers, one study, no lost work: real PostgreSQL, real processes, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.report.rows import batch_size_rows, choose_batch_size
from sweep.study.trial_record import record_of, run_id_of
from tests.conftest import write_space

pytestmark = pytest.mark.slow

SLOW_SPACE = """
name: slow
dataset: {source: synthetic, n_samples: 1500, n_features: 10, seed: 0}
model: {hidden: [32]}
cv: {folds: 3, seed: 0}
training: {epochs: 6, device: cpu}
search:
  batch_size: [1]
  lr: {low: 0.0001, high: 0.001}
  optimizer: [sgd, adam]
sampler: {name: random, seed: 0}
pruner: none
budget: {trials: 4, group_size: 1}
"""

QUICK_SPACE = SLOW_SPACE.replace("n_samples: 1500", "n_samples: 200").replace(
    "batch_size: [1]", "batch_size: [16, full]"
)


def _sweep(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _runs(tracking_uri: str, study: str):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _wait_for_running_trial(storage: str, study: str, timeout: float = 60) -> None:
    """Until a trial has been training for a moment (past its first epoch's heartbeat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            loaded = optuna.load_study(study_name=study, storage=storage)
            if loaded.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                time.sleep(0.3)
                return
        except KeyError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no trial of {study} started within {timeout} s")


def test_two_workers_started_together_share_one_study(workdir: Path, postgres_url: str) -> None:
    space = write_space(workdir, "quick2", QUICK_SPACE.replace("trials: 4", "trials: 6"))
    tracking = f"sqlite:///{workdir}/mlflow.db"
    args = [
        "run",
        "--space",
        str(space),
        "--study",
        "shared",
        "--storage",
        postgres_url,
        "--tracking-uri",
        tracking,
    ]
    first, second = _sweep(*args), _sweep(*args)
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 6, states
    assert len({t.number for t in study.trials}) == len(study.trials)
    parents, children = _runs(tracking, "shared")
    assert len(parents) == 1  # created exactly once
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    # A worker that asked for a trial beyond the budget gave it back, FAILED, before any run.
    surplus = [t for t in study.trials if "surplus" in t.user_attrs]
    assert all(t.state == TrialState.FAIL for t in surplus)
    assert len(children) == len(study.trials) - len(surplus)
    assert all(r.info.status != "RUNNING" for r in parents + children)


def test_workers_flag_runs_worker_processes_to_the_budget(workdir: Path, postgres_url: str) -> None:
    space = write_space(workdir, "quick3", QUICK_SPACE.replace("trials: 4", "trials: 6"))
    tracking = f"sqlite:///{workdir}/mlflow.db"
    launcher = _sweep(
        "run",
        "--space",
        str(space),
        "--workers",
        "2",
        "--storage",
        postgres_url,
        "--tracking-uri",
        tracking,
    )
    output = launcher.communicate(timeout=300)[0]
    assert launcher.returncode == 0, output
    assert output.count("worker done") == 2
    study = optuna.load_study(study_name="slow", storage=postgres_url)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 6
    parents, children = _runs(tracking, "slow")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # the batch size the report chose from all workers' trials, by the 1-SE rule
    choice = choose_batch_size(batch_size_rows(study.trials))
    assert parents[0].data.tags["best_batch_size"] == choice.batch_size


def test_kill_9_mid_trial_then_resume_completes_the_budget(
    workdir: Path, postgres_url: str
) -> None:
    space = write_space(workdir, "slow", SLOW_SPACE)
    tracking = f"sqlite:///{workdir}/mlflow.db"
    env = {"SWEEP_HEARTBEAT_SECONDS": "1"}  # a dead worker is noticed after 3 s
    args = ["run", "--space", str(space), "--storage", postgres_url, "--tracking-uri", tracking]
    worker = _sweep(*args, env=env)
    _wait_for_running_trial(postgres_url, "slow")
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)

    before = optuna.load_study(study_name="slow", storage=postgres_url).trials
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    completed_before = {t.number for t in before if t.state == TrialState.COMPLETE}
    parents, children = _runs(tracking, "slow")
    assert "RUNNING" in {c.info.status for c in children}  # what kill -9 leaves behind

    time.sleep(4)  # past the heartbeat's grace period
    resumed = _sweep(*args, env=env)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output

    after = optuna.load_study(study_name="slow", storage=postgres_url).trials
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after) == 4
    assert completed_before <= {t.number for t in after if t.state == TrialState.COMPLETE}
    assert [t.number for t in after] == list(range(len(after)))  # no duplicate numbers
    assert after[killed[0].number].state == TrialState.FAIL
    retried = [t for t in after if t.system_attrs.get("failed_trial") == killed[0].number]
    assert retried and retried[0].params == killed[0].params  # re-queued with its params
    parents, children = _runs(tracking, "slow")
    assert all(r.info.status != "RUNNING" for r in parents + children)  # the reaper's work
    # It died before its record: its run is found by its trial-number tag.
    killed_runs = [
        c for c in children if c.data.tags["optuna.trial_number"] == str(killed[0].number)
    ]
    assert [c.info.status for c in killed_runs] == ["FAILED"]
    assert killed_runs[0].data.tags["reaped"] == "trial ended FAIL"
    assert all("reaped" not in c.data.tags for c in children if c not in killed_runs)


@pytest.mark.parametrize(
    "signals", [1, 2], ids=["first-signal-stops-cleanly", "second-stops-at-once"]
)
def test_ctrl_c_records_the_current_trial_and_leaves_nothing_running(
    workdir: Path, signals: int
) -> None:
    space = write_space(workdir, "slow", SLOW_SPACE.replace("trials: 4", "trials: 20"))
    storage = f"sqlite:///{workdir}/optuna.db"
    tracking = f"sqlite:///{workdir}/mlflow.db"
    worker = _sweep("run", "--space", str(space), "--storage", storage, "--tracking-uri", tracking)
    _wait_for_running_trial(storage, "slow")
    for _ in range(signals):
        worker.send_signal(signal.SIGINT)
        time.sleep(0.05)
    output = worker.communicate(timeout=120)[0]
    study = optuna.load_study(study_name="slow", storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    parents, children = _runs(tracking, "slow")
    assert all(r.info.status != "RUNNING" for r in parents + children)
    assert len(study.trials) < 20
    if signals == 1:
        assert worker.returncode == 0, output
        assert "Stopped by SIGINT" in output and "Resume with the same command" in output
        last = study.trials[-1]
        if last.state == TrialState.PRUNED:  # the signal came while it trained: the epoch ended
            assert record_of(last).prune_reason.startswith("stopped by SIGINT after epoch")
        else:  # it came between the trial's ask and its first step (a loaded machine)
            assert last.state == TrialState.FAIL  # FAILED, so that the resume runs it again
            (run,) = [c for c in children if c.data.tags["optuna.trial_number"] == str(last.number)]
            assert run.data.tags["fail_reason"] == "not started: stopped by SIGINT"
            assert run.info.status == "FAILED"
    else:
        assert worker.returncode == 130, output
        # FAILED if the second signal cut the epoch short; PRUNED if the epoch had ended and
        # the trial was being recorded, which the second signal does not interrupt.
        last = study.trials[-1]
        assert last.state in (TrialState.FAIL, TrialState.PRUNED)
        expected = "FAILED" if last.state == TrialState.FAIL else "KILLED"
        run_status = {c.info.run_id: c.info.status for c in children}
        assert run_status[run_id_of(last)] == expected
