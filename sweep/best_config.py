"""The one call other projects use to import a sweep's best config.

    from sweep import load_best_config
    best = load_best_config("best.json")          # or a study name, or "runs:/<run_id>"
    optimizer = best.make_optimizer(model.parameters())

The config itself is plain data (:mod:`sweep.best_config_data`), JSON or YAML, never pickle.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sweep.best_config_data import (
    ARTIFACT_FILE,
    SCHEMA,
    BestConfig,
    Provenance,
    dumps,
    read_config_file,
    write_atomically,
)
from sweep.locations import resolve_tracking_uri

__all__ = [
    "ARTIFACT_FILE",
    "SCHEMA",
    "BestConfig",
    "Provenance",
    "dumps",
    "load_best_config",
    "read_config_file",
    "write_atomically",
]


def load_best_config(
    source: str | os.PathLike, *, storage: str | None = None, tracking_uri: str | None = None
) -> BestConfig:
    """Load a sweep's best config from a file, an MLflow ``runs:/`` URI, or a study name.

    Args:
        source: ``best.json`` / ``best.yaml`` (an exported file), ``runs:/<parent_run_id>``
            (optionally followed by ``/best_config.json``), or a study name.
        storage: Optuna storage URL for a study name; default ``$SWEEP_STORAGE`` or
            ``sqlite:///mlruns/optuna.db``.
        tracking_uri: MLflow tracking URI for ``runs:/``; default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///mlruns/mlflow.db``.

    Example:
        >>> best = load_best_config("default")
        >>> best.batch_size, best.lr, best.optimizer
    """
    text = os.fspath(source)
    if text.startswith("runs:/"):
        return _from_mlflow(text, tracking_uri)
    path = Path(text)
    if path.suffix in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"best config file {text!r} does not exist.")
        return read_config_file(path)
    # Optuna loads only when a study name is given: reading a file stays light.
    from sweep.report.export import best_config_from_study

    return best_config_from_study(text, storage=storage)


def _from_mlflow(uri: str, tracking_uri: str | None) -> BestConfig:
    import mlflow.artifacts  # only for a runs:/ URI: MLflow is heavy to import

    artifact_uri = (
        uri if uri.endswith((".json", ".yaml", ".yml")) else f"{uri.rstrip('/')}/{ARTIFACT_FILE}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=resolve_tracking_uri(tracking_uri)
        )
        return read_config_file(Path(local))
