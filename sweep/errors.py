"""Errors the CLI turns into a message and exit code 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: a flag, a file or a stored study that does not fit.

    The message names the flag or file, the key, the rule and the value, and says how to fix it.
    Raised before anything is created.
    """
