"""The report's files reach the parent MLflow run in one upload, every one of them, and
``sweep report`` writes the same figures to its folder as it uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweep.best_config import BestConfig
from sweep.commands.report import run_report
from sweep.commands.run import RunOptions, run_sweep
from tests.conftest import local_tracking_uri, tiny_space

pytestmark = pytest.mark.slow
STORAGE = "sqlite:///mlruns/optuna.db"
FIGURES = {
    "learning_curves.png",
    "cv_score_vs_batch_size.png",
    "time_and_memory_vs_batch_size.png",
    "lr_vs_batch_size.png",
    "optimization_history.png",
    "param_importances.png",
    "pareto_front.png",
}
FILES = FIGURES | {
    "batch_size_report.csv",
    "batch_size_report.json",
    "best_config.json",
    "pareto_front.json",
}


def _parent_artifacts(tmp: Path) -> Path:
    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return Path(client.download_artifacts(parent.info.run_id, "", str(tmp)))


def test_every_report_file_reaches_the_parent_run_and_sweep_report_writes_the_same(
    workdir: Path,
) -> None:
    space = tiny_space(workdir, trials=4, epochs=3)
    space.write_text(space.read_text() + "objectives: [cv_loss, epoch_seconds]\n")
    run_sweep(RunOptions(space=str(space)))

    uploaded = _parent_artifacts(workdir / "after-sweep")
    assert {p.name for p in uploaded.iterdir()} == FILES | {"space"}  # space/: the YAML
    for name in FILES - FIGURES - {"batch_size_report.csv"}:
        json.loads((uploaded / name).read_text())
    BestConfig.from_dict(json.loads((uploaded / "best_config.json").read_text()))
    assert (uploaded / "batch_size_report.csv").read_text().startswith("batch_size,")
    assert all((uploaded / name).read_bytes().startswith(b"\x89PNG") for name in FIGURES)

    folder = workdir / "report-folder"
    run_report("tiny", storage_url=STORAGE, tracking_uri=local_tracking_uri(), output=folder)
    written = {p.name for p in folder.iterdir()}
    assert written == FIGURES | {"batch_size_report.csv", "batch_size_report.json"}
    reported = _parent_artifacts(workdir / "after-report")
    assert {p.name for p in reported.iterdir()} == FILES | {"space"}
    for name in FIGURES | {"batch_size_report.csv"}:  # drawn once: the very same bytes
        assert (folder / name).read_bytes() == (reported / name).read_bytes(), name
    assert json.loads((folder / "batch_size_report.json").read_text()) == json.loads(
        (reported / "batch_size_report.json").read_text()
    )
