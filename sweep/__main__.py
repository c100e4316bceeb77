"""``python -m sweep``: the ``sweep`` command."""

from sweep.cli import entry

raise SystemExit(entry())
