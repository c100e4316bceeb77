"""``make bench``: the article's grid trained alone and next to one busy process, side by side.

The grid: synthetic 1000x10 regression, MLP 10->50->1, batch 16 / 64 / full x lr 1e-3 / 1e-2 x
SGD / Adam, 5 folds x 20 epochs, its three stacks trained as a sweep trains them. The busy
process is a single-threaded Python loop this benchmark starts and stops. Two thread settings:
the engine's own choice (:mod:`trainers.threads`) and every core (torch's default pool, which
is what ran before the choice existed). The target is busy / alone <= 1.5x with the engine's
choice.

    .venv/bin/python -m trainers.busy_host_bench [--epochs 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import torch

from trainers.data import load_dataset
from trainers.folds import make_folds
from trainers.problem import TrainingProblem, make_problem
from trainers.stacked_mlp import MLPConfig
from trainers.stacked_optim import OptimizerConfig
from trainers.threads import thread_ceiling
from trainers.train_config import TrainConfig

ARTICLE_BATCH_SIZES = (16, 64, None)  # None: the whole training fold


def article_configs(epochs: int) -> list[TrainConfig]:
    """The article's 12 configs: batch 16 / 64 / full x lr 1e-3 / 1e-2 x SGD / Adam."""
    return [
        TrainConfig(
            batch_size=batch_size,
            epochs=epochs,
            optimizer=OptimizerConfig(name, lr),
            model=MLPConfig((50,)),
        )
        for batch_size in ARTICLE_BATCH_SIZES
        for lr in (1e-3, 1e-2)
        for name in ("sgd", "adam")
    ]


def train_grid(problem: TrainingProblem, configs: list[TrainConfig]) -> float:
    """Seconds to train every stack of ``configs``, as a sweep groups them."""
    stacks: dict[tuple, list[TrainConfig]] = {}
    for config in configs:
        stacks.setdefault(problem.stack_key(config), []).append(config)
    started = time.perf_counter()
    for stack in stacks.values():
        problem.train(stack)
    return time.perf_counter() - started


@contextlib.contextmanager
def busy_process() -> Iterator[None]:
    """One single-threaded Python busy loop running beside the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        process.kill()
        process.wait()


def measure(epochs: int, repeats: int) -> list[tuple[str, float, float]]:
    """(thread setting, best seconds alone, best seconds next to a busy process)."""
    dataset = load_dataset("synthetic", n_samples=1000, n_features=10, noise=0.1, seed=0)
    folds = make_folds(dataset, n_folds=5, seed=0)
    configs = article_configs(epochs)
    rows = []
    every_core = thread_ceiling()
    for label, threads in (("engine's choice", None), (f"{every_core} threads", every_core)):
        problem = make_problem(dataset, folds, device=torch.device("cpu"), threads=threads)
        train_grid(problem, article_configs(1))  # warm-up
        alone = min(train_grid(problem, configs) for _ in range(repeats))
        with busy_process():
            busy = min(train_grid(problem, configs) for _ in range(repeats))
        rows.append((label, alone, busy))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    print(
        f"article grid (1000x10, 12 configs, 5 folds x {args.epochs} epochs) alone and next to "
        f"one busy process; best of {args.repeats}"
    )
    for label, alone, busy in measure(args.epochs, args.repeats):
        print(
            f"  {label:<16} alone {alone:6.2f} s, next to a busy process {busy:6.2f} s: "
            f"x{busy / alone:.2f} (target <= 1.5x for the engine's choice)",
            flush=True,
        )


if __name__ == "__main__":
    main()
