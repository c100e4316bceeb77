"""The checks every command makes before it creates anything: the stores' URLs, the data set, its
folds, the device, and the user's model, loss and metric (loaded and tried on two samples). Each
failure is a UsageError naming the flag or file, the key, the rule and the value. The stores'
checks live in :mod:`sweep.guards.store_checks` and are re-exported here."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

import torch

from search_spaces import SweepSpec
from sweep.errors import UsageError
from sweep.guards.store_checks import check_storage_url, check_tracking_uri
from sweep.outcome import Inputs
from sweep.study.trial_params import builtin_mlp
from trainers import DataError, DeviceError, load_dataset, make_folds, resolve_device
from trainers.data import Dataset
from trainers.device import check_capture, check_precision
from trainers.factory_data import check_model, load_factory_dataset
from trainers.problem import ModelChoice, check_loss_and_metric, n_outputs_of, uses_fast_engine
from trainers.user_code import UserCodeError, load_callable

__all__ = ["check_storage_url", "check_tracking_uri", "load_inputs", "quiet_library_logs"]


def load_inputs(spec: SweepSpec, *, flags: Mapping[str, str] | None = None) -> Inputs:
    """Everything the trials need, or a UsageError naming the file or flag, the key and value.

    A user's data function is called and its arrays checked; a user's model is built and given
    two samples, so a wrong output shape stops the sweep here, before anything is created.
    ``flags`` maps a dotted key to the command-line flag that set it, for the messages.
    """

    def where(key: str) -> str:
        return (flags or {}).get(key) or f"{spec.path}: {key}"

    try:
        if spec.dataset.factory is not None:
            dataset = load_factory_dataset(
                spec.dataset.factory, spec.dataset.kwargs, task=spec.dataset.task
            )
        else:
            dataset = load_dataset(
                spec.dataset.source,
                target=spec.dataset.target,
                task=spec.dataset.task,
                n_samples=spec.dataset.n_samples,
                n_features=spec.dataset.n_features,
                noise=spec.dataset.noise,
                seed=spec.dataset.seed,
                categorical=spec.dataset.categorical,
                missing=spec.dataset.missing,
            )
    except DataError as err:
        key = "dataset.factory: " if spec.dataset.factory is not None else ""
        raise UsageError(f"{spec.path}: {key}{err}") from err
    try:
        folds = make_folds(
            dataset, n_folds=spec.cv.folds, stratify=spec.cv.stratify, seed=spec.cv.seed
        )
    except DataError as err:  # --folds 100000 names --folds, not the YAML file
        raise UsageError(f"{where('cv.folds')}: {err}") from err
    try:
        device = resolve_device(spec.training.device)
    except DeviceError as err:
        raise UsageError(f"{where('training.device')}: {err}") from err
    model = _model(spec, dataset)
    loss = _user_function(spec, "loss", spec.loss)
    metric = _user_function(spec, "metric", spec.metric)
    if callable(metric) and not isinstance(getattr(metric, "higher_is_better", None), bool):
        raise UsageError(
            f"{spec.path}: metric: {spec.metric} must say which way is better. Set "
            f"`{metric.__name__}.higher_is_better = True` (or False) after the function."
        )
    try:
        fast = uses_fast_engine(dataset, model, loss, metric, spec.preprocess.standardize)
    except ValueError as err:
        raise UsageError(f"{where('preprocess.standardize')}: {err}") from err
    if not fast:
        try:
            check_loss_and_metric(dataset, model, loss, metric)
        except ValueError as err:
            raise UsageError(
                f"{spec.path}: {err}. Choose a loss and metric for the task (auto picks them), "
                "or make the model's outputs fit the targets."
            ) from err
    for key, check in (
        ("training.precision", check_precision),
        ("training.capture", check_capture),
    ):
        value = getattr(spec.training, key.split(".")[1])
        try:
            check(value, device)
        except DeviceError as err:
            raise UsageError(f"{where(key)}: {err}") from err
        if not fast and value not in ("fp32", "off"):
            raise UsageError(
                f"{where(key)}: {value!r} is for the built-in MLP's own engine; this space "
                "trains on the generic engine (its own model, loss, metric or unscaled data), "
                "which runs fp32 steps eagerly. Remove the setting."
            )
    return Inputs(
        dataset,
        folds,
        device,
        model,
        loss,
        metric,
        spec.preprocess.standardize,
        threads=spec.training.threads,
    )


def _model(spec: SweepSpec, dataset: Dataset) -> ModelChoice:
    """The built-in MLP, or the user's factory, built once and tried on two samples."""
    if spec.model.factory is None:
        return ModelChoice(mlp=builtin_mlp(spec))
    try:
        factory = load_callable(spec.model.factory)
        check_model(
            factory,
            spec.model.kwargs,
            input_shape=tuple(dataset.X.shape[1:]),
            n_outputs=n_outputs_of(dataset),
            sample=torch.as_tensor(dataset.X[:2]),
            task=dataset.task,
        )
    except UserCodeError as err:
        raise UsageError(f"{spec.path}: model.factory: {err}") from err
    return ModelChoice(factory=factory, kwargs=dict(spec.model.kwargs))


def _user_function(spec: SweepSpec, key: str, value: str) -> str | Callable:
    """A loss or metric: its name, or the user's function a "file.py:function" names."""
    if ":" not in value:
        return value
    try:
        return load_callable(value)
    except UserCodeError as err:
        raise UsageError(f"{spec.path}: {key}: {err}") from err


def quiet_library_logs() -> None:
    # MLflow prints two lines per run it ends on a tracking server; the sweep prints its own.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("alembic", "mlflow", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
