"""``make bench``: the trainers' three-way benchmark, then the same grid as a real sweep
(Optuna + MLflow on SQLite) to measure the sweep's own overhead, all in one process.

The overhead share is (sweep wall time - the engine's time on the same grid) / sweep wall time:
creating the stores, asking and telling Optuna, MLflow writes, the plots and the tables, and any
slowdown they cause the training.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

import torch

from sweep.outcome import SweepOutcome
from trainers import benchmark as engine_benchmark

SPACE = """
name: bench
dataset: {{source: synthetic, n_samples: 1000, n_features: 10, noise: 0.1, seed: 0}}
model: {{hidden: [50]}}
cv: {{folds: 5, seed: 0}}
training: {{epochs: {epochs}, device: {device}}}
search:
  batch_size: [1, 16, 64, full]
  lr: [0.001, 0.01]
  optimizer: [sgd, adam]
sampler: {{name: grid, seed: 0}}
pruner: none
budget: {{trials: 16, group_size: 16}}
"""


def sweep_walls(*, epochs: int, device: str) -> list[tuple[str, float, SweepOutcome]]:
    """Wall seconds of the grid run as a real sweep: first into new stores (their tables get
    created, and Optuna, MLflow and matplotlib get imported), then as a second study in the same
    stores; with each the sweep's own split of its time."""
    from sweep.commands.run import RunOptions, run_sweep

    walls = []
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "bench.yaml"
        space.write_text(SPACE.format(epochs=epochs, device=device))
        for label, study in (
            ("new stores, first in the process", "bench-cold"),
            ("existing stores", "bench-warm"),
        ):
            options = RunOptions(
                space=str(space),
                study=study,
                storage=f"sqlite:///{folder}/optuna.db",
                tracking_uri=f"sqlite:///{folder}/mlflow.db",
            )
            quiet = io.StringIO()
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                started = time.perf_counter()
                outcome = run_sweep(options)
                walls.append((label, time.perf_counter() - started, outcome))
    return walls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="small case only, 5 epochs")
    args = parser.parse_args(argv)
    device = engine_benchmark.resolve_device(args.device)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores"
    )
    small = engine_benchmark.SMALL
    if args.quick:
        small = engine_benchmark.BenchCase(**{**small.__dict__, "epochs": 5})
    small_timings = engine_benchmark.run_case(small, device)
    print(engine_benchmark.format_case(small, small_timings), flush=True)
    if not args.quick:
        large = engine_benchmark.LARGE
        print(
            engine_benchmark.format_case(large, engine_benchmark.run_case(large, device)),
            flush=True,
        )
    # Overhead: what the sweep adds (Optuna, MLflow, report, and any slowdown of training they
    # cause) over the same grid trained by the engine alone, measured above in this process.
    engine_seconds = small_timings[-1].seconds
    for label, wall, outcome in sweep_walls(epochs=small.epochs, device=device.type):
        print(
            f"sweep of the same grid, {label} (Optuna grid sampler + MLflow, SQLite): "
            f"{wall:.2f} s wall vs {engine_seconds:.2f} s engine alone: "
            f"overhead {100 * (wall - engine_seconds) / wall:.1f}% of wall time\n"
            f"  the sweep's own split: {outcome.training_seconds:.2f} s in the engine, "
            f"{outcome.seconds - outcome.training_seconds:.2f} s opening the stores, asking and "
            f"telling Optuna, writing MLflow and the report, "
            f"{wall - outcome.seconds:.2f} s validating and importing"
        )
    best = min(small_timings[1:], key=lambda t: t.seconds)
    print(
        f"best vs naive on {small.name}: {best.way} x{small_timings[0].seconds / best.seconds:.1f}"
    )


if __name__ == "__main__":
    main()
