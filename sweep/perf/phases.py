"""Where a ``sweep run`` process spends its wall time, printed with ``-v``.

The phases are measured where they happen (``with PHASES.phase("stores"): ...``); the seconds
spent in import statements are counted apart (:func:`count_imports`) and taken out of the phase
they fell in, so the split adds up. Training is the engine's own clock, Optuna the trial loop's
time outside the engine. "other" is what no phase names: reading the space and the data, and
Python's start, up to the command line's first line.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
import time
from collections.abc import Iterator

PHASE_ORDER = ("startup", "imports", "stores", "training", "Optuna", "MLflow", "report")


class PhaseClock:
    """Seconds per phase of this process's run, imports apart. Phases nest: an inner phase's
    time is its own, not its outer phase's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.import_seconds = 0.0
        self.started = time.perf_counter()
        self.verbose = False  # -v: imports counted, the tracking sink's calls timed
        self._inner: list[float] = []  # per open phase: seconds charged to phases inside it

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the block's wall time, less its imports and inner phases, to ``name``."""
        started, imports = time.perf_counter(), self.import_seconds
        self._inner.append(0.0)
        try:
            yield
        finally:
            inner = self._inner.pop()
            own = time.perf_counter() - started - (self.import_seconds - imports)
            self.add(name, own - inner)
            if self._inner:
                self._inner[-1] += own

    def split(self) -> str:
        """One line: each phase's seconds, then the rest of the process's life so far."""
        seconds = dict(self.seconds)
        seconds["imports"] = self.import_seconds
        age, total = process_age(), time.perf_counter() - self.started
        if age is not None and age >= total:
            seconds["startup"], total = age - total, age
        named = [name for name in PHASE_ORDER if name in seconds]
        named += sorted(set(seconds) - set(PHASE_ORDER))
        parts = [f"{name} {seconds[name]:.2f} s" for name in named]
        other = total - sum(seconds.values())
        parts.append(f"other {max(other, 0.0):.2f} s")
        return (
            f"time split of {total:.2f} s: " + ", ".join(parts) + "; exit: teardown skipped "
            "(stores drained, streams flushed, then os._exit)"
        )


class TimedSink:
    """A tracking sink whose every method call on this thread is charged to the "MLflow" phase
    (creating runs, queueing writes, and waiting for the writer thread to drain)."""

    def __init__(self, sink: object, clock: PhaseClock) -> None:
        self._sink, self._clock = sink, clock

    def __getattr__(self, name: str) -> object:
        value = getattr(self._sink, name)
        if not callable(value):
            return value
        clock = self._clock

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the sink's own signature
            with clock.phase("MLflow"):
                return value(*args, **kwargs)

        return timed


PHASES = PhaseClock()


def count_imports(clock: PhaseClock = PHASES) -> None:
    """Count the wall time of the main thread's outermost import statements into
    ``clock.import_seconds`` from now on (a wrapper around ``builtins.__import__``)."""
    clock.verbose = True
    original = builtins.__import__
    main = threading.get_ident()
    depth = 0

    def timed_import(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - __import__'s own
        nonlocal depth
        if depth or threading.get_ident() != main:
            return original(*args, **kwargs)
        depth += 1
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            depth -= 1
            clock.import_seconds += time.perf_counter() - started

    builtins.__import__ = timed_import


def process_age() -> float | None:
    """Seconds since this process started (Linux's /proc, 10 ms steps), or None elsewhere."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            fields = stat.read().rsplit(")", 1)[1].split()
            started_ticks = int(fields[19])  # field 22 of stat, counted after the name
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
