"""The MLflow sink writes in batches and leaves runs in the state their trial ended in."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweep.tracking.mlflow_sink import MAX_ENTITIES_PER_BATCH, MlflowSink
from tests.conftest import local_tracking_uri

pytestmark = pytest.mark.slow


def test_metrics_go_out_in_log_batch_chunks(workdir: Path) -> None:
    tracker = MlflowSink(local_tracking_uri(), "batched")
    tracker.open_study(existing_run_id=None, tags={"study": "batched"})
    run = tracker.start_trial(0, {"batch_size": 8}, {})
    tracker.drain()
    run_id = tracker.run_id(run)
    calls = []
    real_log_batch = tracker.client.log_batch
    tracker.client.log_batch = lambda *a, **k: (
        calls.append(len(k.get("metrics", []))),
        real_log_batch(*a, **k),
    )[1]
    n_values = 2 * MAX_ENTITIES_PER_BATCH + 5
    for step in range(n_values):
        tracker.log_epoch(run, step, {"val_loss": step / 10})
    assert calls == []  # nothing is written per value
    tracker.end_trial(run, "KILLED")
    tracker.drain()
    assert calls == [MAX_ENTITIES_PER_BATCH, MAX_ENTITIES_PER_BATCH, 5]
    history = tracker.client.get_metric_history(run_id, "val_loss")
    assert len(history) == n_values
    assert tracker.client.get_run(run_id).info.status == "KILLED"


def test_experiment_opens_in_the_training_view_and_artifacts_sit_under_mlruns(
    workdir: Path,
) -> None:
    tracker = MlflowSink(local_tracking_uri(), "kind")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location == (workdir / "mlruns" / "artifacts" / "kind").as_uri()


def test_reopening_the_parent_reuses_it(workdir: Path) -> None:
    tracker = MlflowSink(local_tracking_uri(), "reuse")
    first = tracker.open_study(existing_run_id=None, tags={"study": "reuse"})
    tracker.end_study("KILLED")
    assert tracker.client.get_run(first).info.status == "KILLED"
    again = MlflowSink(local_tracking_uri(), "reuse")
    assert again.open_study(existing_run_id=first, tags={"study": "reuse"}) == first
    assert again.client.get_run(first).info.status == "RUNNING"


def test_failed_writes_are_retried_in_order(workdir: Path, monkeypatch) -> None:
    from sweep.tracking import mlflow_writer

    monkeypatch.setattr(mlflow_writer, "RETRY_DELAYS_SECONDS", (0.01, 0.01))
    tracker = MlflowSink(local_tracking_uri(), "retry")
    tracker.open_study(existing_run_id=None, tags={"study": "retry"})
    run = tracker.start_trial(0, {}, {})
    tracker.drain()
    real_log_batch = tracker.client.log_batch
    failures = [RuntimeError("server restarting")]

    def flaky_log_batch(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real_log_batch(*args, **kwargs)

    tracker.client.log_batch = flaky_log_batch
    tracker.log_epoch(run, 1, {"val_loss": 0.5})
    tracker.end_trial(run, "FINISHED")
    tracker.drain()
    assert failures == []  # the write failed once, and went out on its retry
    finished = tracker.client.get_run(tracker.run_id(run))
    assert finished.data.metrics["val_loss"] == 0.5
    assert finished.info.status == "FINISHED"


def test_writes_that_fail_for_good_are_spooled_and_replayed(workdir: Path, monkeypatch) -> None:
    from sweep.tracking import mlflow_writer

    monkeypatch.setattr(mlflow_writer, "RETRY_DELAYS_SECONDS", (0.01,))
    tracker = MlflowSink(local_tracking_uri(), "spool")
    tracker.open_study(existing_run_id=None, tags={"study": "spool"})
    run = tracker.start_trial(0, {}, {})
    tracker.drain()
    run_id = tracker.run_id(run)
    client = tracker.client
    real_log_batch, real_set_terminated = client.log_batch, client.set_terminated

    def server_down(*args, **kwargs):
        raise ConnectionError("tracking server unreachable")

    client.log_batch = client.set_terminated = server_down
    tracker.log_epoch(run, 3, {"val_loss": 0.25})
    tracker.end_trial(run, "FINISHED")
    tracker.drain()  # no exception: the sweep goes on
    spool = workdir / "mlruns" / "mlflow_spool.jsonl"
    assert len(spool.read_text().splitlines()) == 2  # the batch, then the status

    client.log_batch, client.set_terminated = real_log_batch, real_set_terminated
    again = MlflowSink(local_tracking_uri(), "spool")  # the next sweep replays the spool
    assert not spool.exists()
    replayed = again.client.get_run(run_id)
    assert replayed.data.metrics["val_loss"] == 0.25
    assert replayed.info.status == "FINISHED"


def test_a_relative_sqlite_uri_follows_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow caches stores by URI; the same relative URI used from two folders must still write
    into each folder's own database."""
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        tracker = MlflowSink("sqlite:///mlruns/mlflow.db", f"study-{folder}")
        tracker.drain()
        assert tracker.tracking_uri == f"sqlite:///{tmp_path / folder / 'mlruns' / 'mlflow.db'}"
        assert (tmp_path / folder / "mlruns" / "mlflow.db").exists()
    assert [e.name for e in tracker.client.search_experiments() if e.name != "Default"] == [
        "study-second"
    ]
