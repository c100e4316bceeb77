"""sweep/ is a few rooms with one direction of imports: no cycle (counting imports inside
functions), no folder of more than 12 modules, MLflow only behind the tracking sink and the
``runs:/`` reader, and a report that is built without training code or MLflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "sweep"
MLFLOW_MODULES = {
    "sweep.tracking.mlflow_sink",
    "sweep.tracking.mlflow_writer",
    "sweep.tracking.model_log",
    "sweep.tracking.mlflow_context",
    "sweep.tracking.tracking_server",  # the tracking process loads MLflow's store code early
    "sweep.best_config",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SWEEP.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # "from sweep.report import console" imports the module sweep.report.console
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sweep_graph() -> dict[str, set[str]]:
    return {name: _imports(path) & set(MODULES) for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None. A package's own import of
    its parent package is not an edge: Python imports parents first by itself."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "a.x": {"a"}}) is None


def test_no_import_cycle_among_sweep_modules() -> None:
    assert _cycle(_sweep_graph()) is None


def test_no_folder_of_sweep_holds_more_than_12_modules() -> None:
    folders = {path.parent for path in MODULES.values()}
    sizes = {str(f.relative_to(ROOT)): len(list(f.glob("*.py"))) for f in folders}
    assert len(sizes) >= 5, sizes  # the rooms exist
    assert max(sizes.values()) <= 12, sizes


def test_mlflow_is_imported_only_by_the_sink_and_the_runs_reader() -> None:
    importers = {
        name
        for name, path in MODULES.items()
        if any(m == "mlflow" or m.startswith("mlflow.") for m in _imports(path))
    }
    assert importers == MLFLOW_MODULES


@pytest.mark.slow
def test_the_report_builds_without_training_code_or_mlflow() -> None:
    code = (
        "import sys, sweep.report.build, sweep.report.files, sweep.report.console;"
        "print(sorted(m for m in ('torch', 'mlflow', 'trainers.engine') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
