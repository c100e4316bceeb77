"""``python -m sweep``: the ``sweep`` command."""

from sweep.cli import main

raise SystemExit(main())
