"""Errors the CLI turns into a one-line message: exit code 2 for bad input, 1 for a tracking
process that ended under the sweep."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: a flag, a file or a stored study that does not fit.

    The message names the flag or file, the key, the rule and the value, and says how to fix it.
    Raised before anything is created.
    """


class TrackingProcessError(RuntimeError):
    """The tracking process (:mod:`sweep.tracking.tracking_process`) failed a call, or ended
    before it answered (killed from outside)."""
