"""The sweep's heap is frozen only while the sweep runs, and a caller's frozen heap stays so."""

from __future__ import annotations

import gc

from sweep.commands.gc_freeze import frozen_heap


def test_objects_are_frozen_within_and_unfrozen_after() -> None:
    gc.unfreeze()
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_the_caller_stays_frozen() -> None:
    gc.freeze()
    try:
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
