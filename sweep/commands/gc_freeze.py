"""The garbage collector and the sweep's heap.

A sweep process holds hundreds of thousands of long-lived objects (torch, SQLAlchemy, MLflow,
Optuna, matplotlib). Each full collection walks all of them, a few tenths of a second on a small
CPU, and imports and store migrations trigger several. Frozen, they are skipped by every
collection while the sweep runs; unfrozen when it ends, they are collected as usual again.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within: the objects that exist on entry are left out of garbage collections. A heap the
    caller froze already (a forking server) stays frozen after."""
    frozen_by_caller = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_by_caller:
            gc.unfreeze()
