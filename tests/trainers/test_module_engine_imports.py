"""The module engine stands alone too: torch, numpy and scikit-learn only.

(test_import_guard imports ``trainers`` in a fresh interpreter; this checks the sources of the
subpackage, which its glob of ``trainers/*.py`` does not reach.)
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.trainers.test_import_guard import FORBIDDEN

TRAINERS = Path(__file__).resolve().parents[2] / "trainers"


def test_module_engine_and_losses_import_no_service_package():
    paths = sorted((TRAINERS / "module_engine").glob("*.py")) + [TRAINERS / "losses.py"]
    offenders = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
