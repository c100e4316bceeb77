"""The CPU threads of each ``sweep worker`` that ``sweep run --workers N`` starts on one host.

Each worker gets at most ``cores // N`` intra-op threads, written into its environment before
the process starts, so torch builds its pool that size: N pools as wide as the machine would
take cores from each other, and torch's ops wait for their slowest thread
(:mod:`trainers.threads`). ``training.threads`` (``--threads``) sets the count instead.
"""

from __future__ import annotations

import os

# The variables torch's OpenMP and MKL pools read when they start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_threads(workers: int, *, threads: int | None, cores: int | None = None) -> int:
    """Threads per worker: ``threads`` when the space or ``--threads`` sets it, else an even
    share of the host's cores (at least one)."""
    if threads is not None:
        return threads
    return max(1, (cores or os.cpu_count() or 1) // workers)


def worker_environment(
    environ: dict[str, str], workers: int, *, threads: int | None, cores: int | None = None
) -> dict[str, str]:
    """``environ`` with every pool variable set to :func:`worker_threads`."""
    count = str(worker_threads(workers, threads=threads, cores=cores))
    return {**environ, **dict.fromkeys(THREAD_VARIABLES, count)}
