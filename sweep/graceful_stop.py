"""Ctrl-C and SIGTERM: the first stops the sweep cleanly, the second at once.

First signal: the running trials end at the close of their current epoch, pruned with the reason
``stopped by SIGINT after epoch N``, and are recorded; trials not started yet are failed (they do not count, so a
resume runs them again); the worker exits 0 and says how to resume. Second signal: a
KeyboardInterrupt at once; the running trials are marked FAILED, never left RUNNING.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType


class GracefulStop:
    """Installs itself as the SIGINT/SIGTERM handler while used as a context manager."""

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one came
        self._previous: dict[int, object] = {}
        self._shield_depth = 0
        self._interrupt_pending = False

    def __enter__(self) -> GracefulStop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Run bookkeeping that must not be cut short (recording FAILED states, ending runs): a
        second signal during it takes effect when it is done."""
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1
            if self._shield_depth == 0 and self._interrupt_pending:
                self._interrupt_pending = False
                raise KeyboardInterrupt("second signal")

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            if self._shield_depth:
                self._interrupt_pending = True
                return
            raise KeyboardInterrupt(f"second {name}")
        self.requested = name
        print(
            f"\n{name}: finishing the current epoch, then stopping cleanly "
            "(send it again to stop at once).",
            file=sys.stderr,
            flush=True,
        )
