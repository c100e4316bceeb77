"""``make bench``: how much of the machine's matmul speed the engine reaches on a larger grid.

The grid: synthetic 20000x50 regression, MLP 50->256->1, batch 64 / 256 / 1024 / full x lr
1e-3 / 1e-2 x SGD / Adam, 5 folds x 10 epochs, trained as a sweep trains it (four stacks of
four trials x five folds). Achieved FLOP/s counts the matmul FLOPs the training needs (2 per
multiply-add): each layer's forward, the weight gradient, the input gradient of every layer but
the first, and the validation forward after each epoch; the optimizer, activations and loss are
not counted. The peak is ``torch.bmm`` timed alone on each stack's first-layer shape
(rows x batch x 50 @ rows x 50 x 256), with every thread of the process; the best of those is
the machine's figure; a line per batch size follows (each stack trains the same samples, so
each holds a quarter of the FLOPs). ``--quick`` runs a small version in seconds.

    .venv/bin/python -m trainers.flops_bench [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from trainers.benchmark import BenchCase
from trainers.busy_host_bench import train_grid
from trainers.data import load_dataset
from trainers.folds import make_folds
from trainers.problem import make_problem
from trainers.threads import intra_op_threads, thread_ceiling

# One hidden layer of 256: the grid of the efficiency target.
FULL = BenchCase(
    "synthetic 20000x50", 20_000, 50, epochs=10, batch_sizes=(64, 256, 1024, None), hidden=(256,)
)
QUICK = dataclasses.replace(FULL, name="synthetic 2000x50", n_samples=2_000, epochs=2)


def training_flops(
    grid: BenchCase, train_sizes: tuple[int, ...], val_sizes: tuple[int, ...]
) -> int:
    """Matmul FLOPs of training every config of ``grid`` (see the module's docstring)."""
    widths = (grid.n_features, *grid.hidden, 1)
    layer_macs = [a * b for a, b in zip(widths[:-1], widths[1:])]
    forward = sum(layer_macs)
    backward = sum(layer_macs) + sum(layer_macs[1:])  # weight gradients, then input gradients
    per_epoch = (forward + backward) * sum(train_sizes) + forward * sum(val_sizes)
    return 2 * per_epoch * grid.epochs * len(grid.configs())


def bmm_peak(shapes: list[tuple[int, int, int, int]], repeats: int = 20) -> float:
    """The best FLOP/s of ``torch.bmm`` over ``(rows, batch, n_in, n_out)`` shapes."""
    best = 0.0
    for rows, batch, n_in, n_out in shapes:
        left, right = torch.randn(rows, batch, n_in), torch.randn(rows, n_in, n_out)
        torch.bmm(left, right)
        started = time.perf_counter()
        for _ in range(repeats):
            torch.bmm(left, right)
        seconds = (time.perf_counter() - started) / repeats
        best = max(best, 2 * rows * batch * n_in * n_out / seconds)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2000 samples, 2 epochs")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    dataset = load_dataset(
        "synthetic", n_samples=grid.n_samples, n_features=grid.n_features, seed=0
    )
    folds = make_folds(dataset, n_folds=grid.n_folds, seed=0)
    problem = make_problem(dataset, folds, device=torch.device("cpu"))
    configs = grid.configs()
    train_grid(problem, [dataclasses.replace(configs[0], epochs=1)])  # warm-up
    flops = training_flops(grid, problem.train_sizes, problem.data.val_sizes)
    per_batch = []  # (batch size, seconds, FLOPs, how it ran) per stack, one stack each
    for batch_size in grid.batch_sizes:
        stack = [config for config in configs if config.batch_size == batch_size]
        workers = problem.stack_workers(stack)
        how = f"{workers} sub-stacks" if workers > 1 else f"{problem.stack_threads(stack)} thr"
        share = flops * len(stack) // len(configs)  # every stack trains as many samples
        per_batch.append((batch_size, train_grid(problem, stack), share, how))
    seconds = sum(stack_seconds for _, stack_seconds, _, _ in per_batch)
    rows = 4 * grid.n_folds  # four trials (2 LRs x 2 optimizers) per batch size
    full = max(problem.train_sizes)
    shapes = [(rows, b or full, grid.n_features, grid.hidden[0]) for b in grid.batch_sizes]
    with intra_op_threads(thread_ceiling()):
        peak = bmm_peak(shapes)
    achieved = flops / seconds
    print(
        f"engine efficiency: {grid.n_samples}x{grid.n_features}, MLP {grid.n_features}->"
        f"{grid.hidden[0]}->1, 16 configs, {grid.n_folds} folds x {grid.epochs} epochs: "
        f"{seconds:.2f} s, {flops / 1e9:.1f} GFLOP of matmuls, {achieved / 1e9:.1f} GFLOP/s; "
        f"torch.bmm peak on the same shapes ({thread_ceiling()} threads) {peak / 1e9:.1f} "
        f"GFLOP/s: {100 * achieved / peak:.0f}% of peak (floor {flops / peak:.2f} s)"
    )
    for batch_size, stack_seconds, stack_flops, how in per_batch:
        rate = stack_flops / stack_seconds
        print(
            f"  batch {batch_size or 'full':>5} ({how}): {stack_seconds:6.2f} s, "
            f"{rate / 1e9:6.1f} GFLOP/s, {100 * rate / peak:3.0f}% of peak"
        )


if __name__ == "__main__":
    main()
