"""``sweep run``: validate everything, then create or resume the study and run the trials.

Everything the user gave is checked before the first file, study or MLflow run is created, so a
typo costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from search_spaces import CAPTURE_MODES, SpaceError, SweepSpec, load_space
from sweep.errors import UsageError
from sweep.locations import resolve_storage, resolve_tracking_uri


@dataclass(frozen=True)
class RunOptions:
    """What ``sweep run`` was asked for; ``overrides`` maps dotted keys to (flag, value)."""

    space: str = "default"
    study: str | None = None
    overrides: dict[str, tuple[str, Any]] = field(default_factory=dict)
    storage: str | None = None
    tracking_uri: str | None = None
    workers: int = 1  # worker processes on this host (one per GPU with gpus)
    gpus: tuple[int, ...] = ()  # CUDA device indices, one worker each


@dataclass(frozen=True)
class WorkerOptions:
    """What ``sweep worker`` was asked for: join an existing study and run its trials."""

    study: str
    storage: str | None = None
    tracking_uri: str | None = None
    device: str | None = None  # default: the device the study's space names
    capture: str | None = None  # default: the study's; compiling depends on the host
    show_progress: bool = True


@dataclass(frozen=True)
class SweepOutcome:
    study_name: str
    storage_url: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    trials_run: int
    counted_trials: int
    budget: int
    worker_exit_codes: tuple[int, ...] = ()  # with --workers: each worker process's exit status
    seconds: float = 0.0  # this process's sweep, from opening the stores to the report's end
    training_seconds: float = 0.0  # of which in the training engine


def run_sweep(options: RunOptions) -> SweepOutcome:
    """Validate, then run the study to its budget. Raises UsageError on any bad input."""
    if options.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {options.workers}.")
    plan = _validate(options)
    quiet_library_logs()
    if options.workers > 1 or options.gpus:
        from sweep.launcher import launch_workers

        return launch_workers(plan, workers=options.workers, gpus=options.gpus)
    from sweep.study_session import run_validated  # heavy imports only once input is valid

    return run_validated(**plan)


def run_worker(options: WorkerOptions) -> SweepOutcome:
    """Join a study in shared storage and run trials until its budget is met by all workers."""
    from sweep.study import load_spec

    storage_url = resolve_storage(options.storage)
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    check_storage_url(storage_url)
    check_tracking_uri(tracking_uri)
    spec = load_spec(storage_url, options.study)
    # Workers sharing a study must not draw the same sequence of trials from the same seed.
    worker_seed = int.from_bytes(os.urandom(4), "big")
    spec = replace(spec, sampler=replace(spec.sampler, seed=worker_seed))
    if options.device is not None:
        spec = replace(spec, training=replace(spec.training, device=options.device))
    if options.capture is not None:
        if options.capture not in CAPTURE_MODES:
            raise UsageError(
                f"--capture {options.capture!r}: must be one of {', '.join(CAPTURE_MODES)}."
            )
        spec = replace(spec, training=replace(spec.training, capture=options.capture))
    flags = {"training.device": "--device"} if options.device else {}
    if options.capture:
        flags["training.capture"] = "--capture"
    dataset, folds, device = load_data(spec, flags=flags)
    quiet_library_logs()
    from sweep.study_session import run_validated

    return run_validated(
        spec=spec,
        dataset=dataset,
        folds=folds,
        device=device,
        study_name=options.study,
        storage_url=storage_url,
        tracking_uri=tracking_uri,
        resuming=True,
        show_progress=options.show_progress,
    )


def _validate(options: RunOptions) -> dict[str, Any]:
    try:
        spec: SweepSpec = load_space(options.space, overrides=options.overrides)
    except SpaceError as err:
        raise UsageError(str(err)) from err
    flags = {key: flag for key, (flag, _value) in options.overrides.items()}
    dataset, folds, device = load_data(spec, flags=flags)
    storage_url = resolve_storage(options.storage)
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    check_storage_url(storage_url)
    check_tracking_uri(tracking_uri)
    study_name = options.study or spec.name
    from sweep.study import check_resumable

    resuming = check_resumable(storage_url, study_name, spec)
    return {
        "spec": spec,
        "dataset": dataset,
        "folds": folds,
        "device": device,
        "study_name": study_name,
        "storage_url": storage_url,
        "tracking_uri": tracking_uri,
        "resuming": resuming,
    }


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
