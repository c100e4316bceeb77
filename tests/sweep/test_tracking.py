"""The MLflow adapter writes in batches and leaves runs in the state their trial ended in."""

from __future__ import annotations

from pathlib import Path

from sweep.tracking import MAX_METRICS_PER_BATCH, Tracker


def test_metrics_go_out_in_log_batch_chunks(workdir: Path) -> None:
    tracker = Tracker("sqlite:///mlruns/mlflow.db", "batched")
    tracker.open_parent(existing_run_id=None, tags={"study": "batched"})
    run = tracker.start_trial(0, {"batch_size": 8}, {})
    calls = []
    real_log_batch = run.client.log_batch
    run.client.log_batch = lambda *a, **k: (
        calls.append(len(k.get("metrics", []))),
        real_log_batch(*a, **k),
    )[1]
    n_values = 2 * MAX_METRICS_PER_BATCH + 5
    for step in range(n_values):
        run.metric("val_loss", step / 10, step)
    assert calls == []  # nothing is written per value
    tracker.finish_run(run, "KILLED")
    assert calls == [MAX_METRICS_PER_BATCH, MAX_METRICS_PER_BATCH, 5]
    history = tracker.client.get_metric_history(run.run_id, "val_loss")
    assert len(history) == n_values
    assert tracker.client.get_run(run.run_id).info.status == "KILLED"


def test_experiment_opens_in_the_training_view_and_artifacts_sit_under_mlruns(
    workdir: Path,
) -> None:
    tracker = Tracker("sqlite:///mlruns/mlflow.db", "kind")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location == (workdir / "mlruns" / "artifacts" / "kind").as_uri()


def test_reopening_the_parent_reuses_it(workdir: Path) -> None:
    tracker = Tracker("sqlite:///mlruns/mlflow.db", "reuse")
    first = tracker.open_parent(existing_run_id=None, tags={"study": "reuse"})
    tracker.end_parent("KILLED")
    again = Tracker("sqlite:///mlruns/mlflow.db", "reuse")
    assert again.open_parent(existing_run_id=first, tags={"study": "reuse"}) == first
    assert again.client.get_run(first).info.status == "RUNNING"
