"""trainers/ stands alone: torch, numpy and scikit-learn only (the GPU box has no optuna/mlflow)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("optuna", "mlflow", "sweep", "search_spaces", "yaml")
TRAINERS = Path(__file__).resolve().parents[2] / "trainers"


@pytest.mark.slow
def test_importing_trainers_loads_no_service_package() -> None:
    code = (
        "import sys, trainers, trainers.engine, trainers.data, trainers.folds; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_trainers_module_imports_a_service_package() -> None:
    offenders = []
    for path in sorted(TRAINERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}" for name in names if name.split(".")[0] in FORBIDDEN
            ]
    assert offenders == []
