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
from sweep.errors import UsageError
from sweep.locations import (
    DEFAULT_STORAGE,
    OPTUNA_STORAGE_ENV,
    STORAGE_ENV,
    resolve_tracking_uri,
    sqlite_path,
)
from sweep.provenance.redact import redact_url

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
        storage: Optuna storage URL for a study name. The study is looked for there, then in
            ``$SWEEP_STORAGE``, ``$OPTUNA_STORAGE`` and ``sqlite:///mlruns/optuna.db``; when none
            holds it, in the MLflow experiment named after the study (its study run's
            ``best_config.json``), so a script anywhere needs only ``$MLFLOW_TRACKING_URI``.
        tracking_uri: MLflow tracking URI for ``runs:/`` and for a study found only in MLflow;
            default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlruns/mlflow.db``.

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
    return _from_study_name(text, storage, tracking_uri)


def _from_study_name(name: str, storage: str | None, tracking_uri: str | None) -> BestConfig:
    """The study's best config from the first Optuna storage that holds it, else from the study
    run's ``best_config.json`` in MLflow."""
    # Optuna loads only when a study name is given: reading a file stays light.
    import optuna

    from sweep.report.export import best_config_from_study

    looked: list[str] = []
    for url in _storage_candidates(storage):
        db_file = sqlite_path(url)
        if db_file is not None and not db_file.exists():
            looked.append(f"{redact_url(url)} (no such file)")
            continue
        try:
            names = optuna.get_all_study_names(storage=url)
        except Exception as err:  # noqa: BLE001 - any storage may be down: look elsewhere
            looked.append(f"{redact_url(url)} (unreachable: {type(err).__name__})")
            continue
        if name in names:
            return best_config_from_study(name, storage=url)
        looked.append(f"{redact_url(url)} (no such study)")
    uri = resolve_tracking_uri(tracking_uri)
    found, why = _from_mlflow_experiment(name, uri)
    if found is not None:
        return found
    raise UsageError(
        f"study {name!r} was found neither in an Optuna storage ({'; '.join(looked)}) nor in "
        f"MLflow at {redact_url(uri)} ({why}). Pass storage= or tracking_uri= (or set "
        "$SWEEP_STORAGE or $MLFLOW_TRACKING_URI) to where the study was run."
    )


def _storage_candidates(flag: str | None) -> list[str]:
    """The Optuna storages a study name is looked for in, in order, each once."""
    urls = [flag, os.environ.get(STORAGE_ENV), os.environ.get(OPTUNA_STORAGE_ENV), DEFAULT_STORAGE]
    return list(dict.fromkeys(url for url in urls if url))


def _from_mlflow_experiment(name: str, tracking_uri: str) -> tuple[BestConfig | None, str]:
    """The best config of the study run in the experiment ``name``, or None and why not."""
    db_file = sqlite_path(tracking_uri)
    if db_file is not None and not db_file.exists():
        return None, "no such file"
    from mlflow.tracking import MlflowClient  # MLflow is heavy to import

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return None, f"no experiment {name!r}"
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.study = '{name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
    except Exception as err:  # noqa: BLE001 - MLflow raises many kinds for a store it can't read
        return None, f"unreachable: {type(err).__name__}"
    study_runs = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    for run in study_runs:
        try:
            return _from_mlflow(f"runs:/{run.info.run_id}", tracking_uri), ""
        except Exception:  # noqa: BLE001 - no best_config.json yet: try an older study run
            continue
    if not study_runs:
        return None, f"experiment {name!r} has no study run"
    return None, f"the study run of experiment {name!r} has no {ARTIFACT_FILE} yet"


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
