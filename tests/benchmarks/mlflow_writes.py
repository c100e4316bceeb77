"""MLflow's own asynchronous logging against the sink's writer thread, side by side in one run.

    .venv/bin/python -m tests.benchmarks.mlflow_writes [--trials 16] [--epochs 20] [--repeats 3]

Each way logs the same trials (one run per trial, the sweep's metrics per epoch: 6 CV-mean curves
and 3 per fold of 5 folds, then the run's end) into a fresh SQLite store. Two figures per way:
the time the training loop is blocked in logging calls, and the wall time until every write is in
the store. Medians over repeats. Not a test: figures for the README and the issue notes.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from sweep.tracking.mlflow_sink import MAX_ENTITIES_PER_BATCH, MlflowSink


def _epoch_metrics(epoch: int) -> dict[str, float]:
    metrics = {k: 1.0 / (epoch + 1) for k in ("train_loss", "val_loss", "val_r2", "lr")}
    metrics.update(epoch_seconds=0.01, stack_size=8.0)
    for fold in range(5):
        for key in ("train_loss", "val_loss", "val_r2"):
            metrics[f"fold_{fold}/{key}"] = 1.0 / (epoch + 2)
    return metrics


def sink_thread(uri: str, trials: int, epochs: int) -> tuple[float, float]:
    """The sweep's way: MlflowSink buffers, its writer thread sends in order."""
    sink = MlflowSink(uri, "bench")
    sink.open_study(existing_run_id=None, tags={"study": "bench"})
    started, blocked = time.perf_counter(), 0.0
    for number in range(trials):
        t0 = time.perf_counter()
        run_id = sink.start_trial(number, {"lr": 0.1}, {})
        for epoch in range(epochs):
            sink.log_epoch(run_id, epoch, _epoch_metrics(epoch))
        sink.end_trial(run_id, "FINISHED", metrics={"wall_seconds": 1.0})
        blocked += time.perf_counter() - t0
    sink.drain()
    return blocked, time.perf_counter() - started


def mlflow_async(uri: str, trials: int, epochs: int, *, synchronous: bool) -> tuple[float, float]:
    """MLflow's client: log_batch with synchronous=False (its async queue), or synchronous."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    parent = client.create_run(experiment).info.run_id
    started, blocked, pending = time.perf_counter(), 0.0, []
    for number in range(trials):
        t0 = time.perf_counter()
        run_id = client.create_run(
            experiment, tags={"mlflow.parentRunId": parent, "n": str(number)}
        ).info.run_id
        client.log_param(run_id, "lr", 0.1)
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, epoch)
            for epoch in range(epochs)
            for key, value in _epoch_metrics(epoch).items()
        ]
        metrics.append(Metric("wall_seconds", 1.0, now, 0))
        for start in range(0, len(metrics), MAX_ENTITIES_PER_BATCH):
            chunk = metrics[start : start + MAX_ENTITIES_PER_BATCH]
            result = client.log_batch(run_id, metrics=chunk, synchronous=synchronous)
            if result is not None:
                pending.append(result)
        if not synchronous:  # a run must not end before its metrics land
            for operation in pending:
                operation.wait()
            pending.clear()
        client.set_terminated(run_id, "FINISHED")
        blocked += time.perf_counter() - t0
    for operation in pending:
        operation.wait()
    return blocked, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ways = {
        "sink writer thread (ours)": lambda uri: sink_thread(uri, args.trials, args.epochs),
        "MLflow log_batch(synchronous=False)": lambda uri: mlflow_async(
            uri, args.trials, args.epochs, synchronous=False
        ),
        "MLflow log_batch, synchronous": lambda uri: mlflow_async(
            uri, args.trials, args.epochs, synchronous=True
        ),
    }
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    for way in (sink_thread, lambda uri, t, e: mlflow_async(uri, t, e, synchronous=False)):
        with tempfile.TemporaryDirectory() as tmp:  # warm-up: imports and first-use code paths
            way(f"sqlite:///{Path(tmp) / 'mlflow.db'}", 1, 1)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, way in ways.items():  # interleaved: machine noise hits every way alike
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(way(f"sqlite:///{Path(tmp) / 'mlflow.db'}"))
    points = args.trials * (args.epochs * len(_epoch_metrics(0)) + 1)
    print(f"{args.trials} trials x {args.epochs} epochs, {points} metric points, SQLite store")
    base = statistics.median(b for b, _ in results["sink writer thread (ours)"])
    for name, runs in results.items():
        blocked = statistics.median(b for b, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(
            f"  {name:<38} blocked {blocked:6.3f} s ({blocked / base:4.1f}x ours)  "
            f"until stored {wall:6.3f} s"
        )


if __name__ == "__main__":
    main()
