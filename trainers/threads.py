"""How many intra-op threads torch uses for a stack: one, unless each step is large enough that
splitting its ops pays even on a host where other processes hold cores.

Why one thread is the default for small stacks: torch splits every op of a step across its
intra-op pool and waits for the slowest thread. The engine's steps are many tiny ops (tens of
microseconds each), so when the scheduler takes one core away, for a time slice of milliseconds,
to another process (a user's other job, CI, our own ``--workers``), every op waits for it. The
issue that asked for this measured one busy loop next to a 2-thread sweep making training 9x
slower, and 1.25x with one thread.

The measured basis for the threshold (``python -m trainers.threads``, 2 cores, with other jobs
running, stacked MLP, Adam, 5 folds; "MACs" is the forward's multiply-adds of one step, stack rows
x batch x the sum of the layers' in x out): at or below 4e6 MACs a second thread gained at most
1.1-1.4x when it ran undisturbed and lost up to 80x when a core was taken (0.01x at 7e5 MACs); from
5e7 MACs on it gained 1.5-2.2x, and ops run for milliseconds, longer than a scheduler's time
slice, so a taken core costs a share of an op, not many times it. Hence one thread up to 5e7
MACs, and one more per further 5e7.

A stack of several trials can use more cores without that risk: as sub-stacks of whole trials,
one per thread, each op on one core (``train_stack(workers=...)``), the threads meeting once
per epoch. A taken core then costs the stack the share of work on it, as one thread would lose.
Measured on the flops bench's stacks (20 models, MLP 50->256->1, Adam and SGD, 2 cores): two
sub-stacks ran 1.6x (batch 64, 1.7e7 MACs) to 1.7x (batch 256 to 16000) faster than one
thread, as fast as two intra-op threads; next to a busy process they took 1.0x and 0.85x the
one-thread time where two intra-op threads took 2.5x. So the built-in MLP's stacks use one
worker per started :data:`STEP_MACS_PER_WORKER` (1e7, under which the article grid's stacks
stay whole: there the threads' Python overhead would rival their ops), at most one per trial.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

# A step's forward multiply-adds per intra-op thread: up to this, one thread (see above).
STEP_MACS_PER_THREAD = 50_000_000

# A step's forward multiply-adds per sub-stack thread (``workers``), for stacks that split.
STEP_MACS_PER_WORKER = 10_000_000

_ceiling: int | None = None


def thread_ceiling() -> int:
    """The most threads a stack may use: the pool torch started with in this process (it
    follows ``OMP_NUM_THREADS``, which ``sweep run --workers N`` sets to cores // N)."""
    global _ceiling
    if _ceiling is None:
        _ceiling = max(1, torch.get_num_threads())
    return _ceiling


def step_macs(rows: int, batch_size: int, widths: Sequence[int]) -> int:
    """Forward multiply-adds of one step: ``rows`` stacked models, each on ``batch_size``
    samples, through layers of the given widths (inputs, hidden..., outputs)."""
    return rows * batch_size * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def auto_threads(macs: int, ceiling: int | None = None) -> int:
    """Threads for a step of ``macs`` multiply-adds: one per started
    :data:`STEP_MACS_PER_THREAD`, at least one and at most ``ceiling`` (default
    :func:`thread_ceiling`)."""
    top = thread_ceiling() if ceiling is None else ceiling
    return max(1, min(top, -(-macs // STEP_MACS_PER_THREAD)))


def auto_workers(macs: int, n_trials: int, ceiling: int | None = None) -> int:
    """Sub-stack threads for a stack of ``n_trials`` whose step has ``macs`` multiply-adds: one
    per started :data:`STEP_MACS_PER_WORKER`, at most one per trial and ``ceiling`` (default
    :func:`thread_ceiling`)."""
    top = thread_ceiling() if ceiling is None else ceiling
    return max(1, min(top, n_trials, -(-macs // STEP_MACS_PER_WORKER)))


@contextlib.contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """Run the block with torch's intra-op pool at ``threads``; the previous count after."""
    previous = torch.get_num_threads()
    thread_ceiling()  # remember the process's own pool before the first change
    if threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _probe() -> None:
    """Print seconds per step at 1 thread and at the ceiling for a few stack shapes."""
    import itertools
    import time

    from trainers.data import load_dataset
    from trainers.engine import train_stack
    from trainers.fold_data import prepare_folds
    from trainers.folds import make_folds
    from trainers.stacked_mlp import MLPConfig
    from trainers.stacked_optim import OptimizerConfig
    from trainers.train_config import TrainConfig

    top = thread_ceiling()
    for n_samples, n_features in ((1000, 10), (5000, 50)):
        dataset = load_dataset("synthetic", n_samples=n_samples, n_features=n_features, seed=0)
        folds = make_folds(dataset, n_folds=5, seed=0)
        data = prepare_folds(dataset, folds, device=torch.device("cpu"))
        for width, batch, trials in itertools.product((50, 256), (16, 64, 256, None), (1, 4)):
            config = TrainConfig(
                batch_size=batch,
                epochs=1,
                optimizer=OptimizerConfig("adam", 1e-3),
                model=MLPConfig((width,)),
            )
            seconds = []
            for threads in (1, top):
                with intra_op_threads(threads):
                    train_stack(data, [config] * trials)
                    started = time.perf_counter()
                    train_stack(data, [config] * trials)
                    seconds.append(time.perf_counter() - started)
            size = batch or max(data.train_sizes)
            steps = math.ceil(max(data.train_sizes) / size)
            macs = step_macs(trials * 5, size, (n_features, width, 1))
            print(
                f"{macs:10.2e} MACs/step: 1 thread {1e6 * seconds[0] / steps:8.0f} us/step, "
                f"{top} threads {1e6 * seconds[1] / steps:8.0f} us/step, "
                f"x{seconds[0] / seconds[1]:.2f}"
            )


if __name__ == "__main__":
    _probe()
