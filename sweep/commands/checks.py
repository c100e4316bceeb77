"""The checks every command makes before it creates anything: the stores' URLs, the data set, its
folds and the device. Each failure is a UsageError naming the flag or file, the rule and the
value."""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping

from search_spaces import SweepSpec
from sweep.errors import UsageError


def load_data(spec: SweepSpec, *, flags: Mapping[str, str] | None = None) -> tuple:
    """The data set, its folds and the device, or a UsageError naming the file or flag.

    ``flags`` maps a dotted key to the command-line flag that set it, for the messages.
    """
    from trainers import DataError, DeviceError, load_dataset, make_folds, resolve_device
    from trainers.device import check_capture, check_precision

    try:
        dataset = load_dataset(
            spec.dataset.source,
            target=spec.dataset.target,
            task=spec.dataset.task,
            n_samples=spec.dataset.n_samples,
            n_features=spec.dataset.n_features,
            noise=spec.dataset.noise,
            seed=spec.dataset.seed,
        )
        folds = make_folds(
            dataset, n_folds=spec.cv.folds, stratify=spec.cv.stratify, seed=spec.cv.seed
        )
    except DataError as err:
        raise UsageError(f"{spec.path}: {err}") from err
    try:
        device = resolve_device(spec.training.device)
    except DeviceError as err:
        where = (flags or {}).get("training.device") or f"{spec.path}: training.device"
        raise UsageError(f"{where}: {err}") from err
    for key, check in (
        ("training.precision", check_precision),
        ("training.capture", check_capture),
    ):
        try:
            check(getattr(spec.training, key.split(".")[1]), device)
        except DeviceError as err:
            where = (flags or {}).get(key) or f"{spec.path}: {key}"
            raise UsageError(f"{where}: {err}") from err
    return dataset, folds, device


def check_storage_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise UsageError(
            f"--storage / $SWEEP_STORAGE: {url!r} is not a database URL. Use e.g. "
            "sqlite:///mlruns/optuna.db or postgresql://user@host:5432/dbname."
        ) from err
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise UsageError(
            f"--storage / $SWEEP_STORAGE: backend {parsed.get_backend_name()!r} in {url!r} is not "
            "supported. Use sqlite:///PATH or postgresql://... ."
        )


def check_tracking_uri(uri: str) -> None:
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
                response.read()
        except urllib.error.HTTPError:
            return  # it answered (401 behind basic auth, say): reachable
        except (urllib.error.URLError, OSError) as err:
            raise UsageError(
                f"--tracking-uri / $MLFLOW_TRACKING_URI: the MLflow server at {uri} is unreachable "
                f"({err}). Start it (`make server`) or unset MLFLOW_TRACKING_URI to use "
                "sqlite:///mlruns/mlflow.db."
            ) from err
        return
    if not uri.startswith(("sqlite:///", "postgresql://", "mysql://", "databricks")):
        raise UsageError(
            f"--tracking-uri / $MLFLOW_TRACKING_URI: {uri!r} is not supported. MLflow 3 needs a "
            "database store (sqlite:///mlruns/mlflow.db) or a tracking server (http://host:5000); "
            "the old ./mlruns file store is refused."
        )


def quiet_library_logs() -> None:
    # MLflow prints two lines per run it ends on a tracking server; the sweep prints its own.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("alembic", "mlflow", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
