"""Whether this host has a core to spare now, for the tracking process
(:mod:`sweep.tracking.tracking_process`).

The tracking process overlaps MLflow's and matplotlib's imports and the report's figures with the
sweep's own work, at the price of about 0.5 s more CPU in all (libraries both processes load:
NumPy, pandas, SQLAlchemy, Optuna). With a core idle that is a gain of about a second; on a host
whose other cores are busy, the two processes share one core and the sweep ends later. So the
sweep forks it only when two cores are free: one for itself and one for the tracking process.

"Free" is read at the moment of the decision, from the kernel's count of runnable tasks
(``/proc/loadavg``), not from the load average, which trails the last minute (a sweep that just
ended would count as busy): the least of a few readings over 8 ms, so a task that runs for a
moment (a kernel thread, a shell) does not count, and a busy process, runnable at every reading,
does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LOADAVG = Path("/proc/loadavg")
READINGS, READING_GAP_SECONDS = 5, 0.002


def runnable_others(loadavg_text: str) -> int:
    """Tasks runnable now besides the reader, from ``/proc/loadavg``'s text
    (``"0.52 0.58 0.59 2/467 12345"``: the 4th field is runnable/total, the reader included).

    Example:
        >>> runnable_others("2.38 2.49 2.06 3/136 13610")
        2
    """
    running = loadavg_text.split()[3].split("/")[0]
    return max(0, int(running) - 1)


def spare_cores() -> float:
    """Cores this process may use that nothing else is using now (this process's own included).

    Linux: the usable cores less the tasks runnable now; elsewhere, less the 1-minute load.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    try:
        busy: float = min(_runnable_readings())
    except (OSError, IndexError, ValueError):
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return usable - busy


def _runnable_readings() -> list[int]:
    readings = []
    for reading in range(READINGS):
        if reading:
            time.sleep(READING_GAP_SECONDS)
        readings.append(runnable_others(LOADAVG.read_text()))
    return readings


def worth_a_second_process(cores: float | None = None) -> bool:
    """True when two cores are free: one for this process, one for a helper process."""
    return (spare_cores() if cores is None else cores) >= 2
