"""``sweep best --study NAME``: the study's recommended config, printed or written as a file."""

from __future__ import annotations

import sys
from pathlib import Path

from sweep.best_config import dumps, write_atomically
from sweep.errors import UsageError
from sweep.guards.safe_files import check_output_file
from sweep.guards.store_checks import STORAGE_FLAG, check_storage_url, origin
from sweep.locations import STORAGE_ENV, resolve_storage
from sweep.report.export import best_config_from_study


def export_best(study: str, *, storage: str | None, output: Path | None, fmt: str) -> None:
    if output is not None:
        check_output_file(output, flag="-o")
    if output is not None and output.suffix not in (".json", ".yaml", ".yml"):
        raise UsageError(f"-o {output}: the file name must end in .json, .yaml or .yml.")
    check_storage_url(resolve_storage(storage), source=origin(storage, STORAGE_FLAG, STORAGE_ENV))
    if output is not None and fmt == "json" and output.suffix != ".json":
        fmt = "yaml"  # the file name says which format the reader will parse
    text = dumps(best_config_from_study(study, storage=storage), fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)
        print(f"wrote {output}", file=sys.stderr)
