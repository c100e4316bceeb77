"""Turn a search space into Optuna suggestions, and suggestions into a trainer's config."""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.spec import FloatChoices, FloatParam, FloatRange, SearchSpec, SweepSpec
from sweep.lr_scaling import scaled_lr
from trainers import MLPConfig, OptimizerConfig, TrainConfig
from trainers.vocabulary import MOMENTUM_OPTIMIZERS

# Optimizers whose update uses a momentum coefficient.
USES_MOMENTUM = MOMENTUM_OPTIMIZERS


def suggest_params(trial: optuna.Trial, search: SearchSpec) -> dict[str, Any]:
    """Ask the trial for one point of the search space.

    ``momentum`` is asked for only when the chosen optimizer uses it, so the sampler does not
    waste its model on a parameter that does nothing.
    """
    params: dict[str, Any] = {
        "batch_size": trial.suggest_categorical("batch_size", list(search.batch_size)),
        "optimizer": trial.suggest_categorical("optimizer", list(search.optimizer)),
        "lr": _suggest_float(trial, "lr", search.lr),
    }
    if search.weight_decay is not None:
        params["weight_decay"] = _suggest_float(trial, "weight_decay", search.weight_decay)
    if search.momentum is not None and params["optimizer"] in USES_MOMENTUM:
        params["momentum"] = _suggest_float(trial, "momentum", search.momentum)
    return params


def grid_search_space(search: SearchSpec) -> dict[str, list[Any]]:
    """The grid sampler's table of values; every float parameter is a list by validation."""
    grid: dict[str, list[Any]] = {
        "batch_size": list(search.batch_size),
        "optimizer": list(search.optimizer),
    }
    for name in ("lr", "weight_decay", "momentum"):
        param = getattr(search, name)
        if param is not None:
            assert isinstance(param, FloatChoices), f"grid needs listed values for {name}"
            grid[name] = list(param.values)
    return grid


def effective_lr(params: dict[str, Any], spec: SweepSpec, *, full_batch_size: int) -> float:
    """The trial's learning rate: as sampled, or scaled to its batch size by ``lr_scaling``."""
    scaling = spec.search.lr_scaling
    if scaling is None:
        return float(params["lr"])
    batch_size = full_batch_size if params["batch_size"] == "full" else int(params["batch_size"])
    return scaled_lr(
        float(params["lr"]),
        rule=scaling.rule,
        optimizer=params["optimizer"],
        batch_size=batch_size,
        reference=scaling.reference_batch_size,
    )


def train_config(params: dict[str, Any], spec: SweepSpec, *, full_batch_size: int) -> TrainConfig:
    """The trainer's plain config for one trial's parameters.

    ``full_batch_size`` is the largest training fold, the batch size ``full`` stands for.
    """
    batch_size = params["batch_size"]
    return TrainConfig(
        batch_size=None if batch_size == "full" else int(batch_size),
        epochs=spec.training.epochs,
        optimizer=OptimizerConfig(
            name=params["optimizer"],
            lr=effective_lr(params, spec, full_batch_size=full_batch_size),
            weight_decay=params.get("weight_decay"),
            momentum=params.get("momentum"),
        ),
        model=builtin_mlp(spec),
        schedule=spec.training.schedule,
        step_size=spec.training.step_size,
        gamma=spec.training.gamma,
        seed=spec.cv.seed,
        precision=spec.training.precision,
        capture=spec.training.capture,
    )


def _suggest_float(trial: optuna.Trial, name: str, param: FloatParam) -> float:
    if isinstance(param, FloatRange):
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    return float(trial.suggest_categorical(name, list(param.values)))


def builtin_mlp(spec: SweepSpec) -> MLPConfig:
    """The built-in MLP the space describes; the default one when a model factory is named (the
    generic engine builds the user's module and ignores it)."""
    if spec.model.factory is not None:
        return MLPConfig()
    return MLPConfig(
        hidden=spec.model.hidden, activation=spec.model.activation, dropout=spec.model.dropout
    )
