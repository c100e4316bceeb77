"""How to train: data, folds, the stacked MLP, functional optimizers and the fold-stacked engine.

This package depends on torch, numpy and scikit-learn only. It never imports optuna, mlflow or
``sweep``; progress leaves it through the ``on_epoch`` callback of :func:`train_folds`.

The names below load their submodule on first use (PEP 562), so that the torch-free
:mod:`trainers.vocabulary` can be imported without torch.

Example:
    >>> from trainers import OptimizerConfig  # imports trainers.stacked_optim, and torch
"""

from __future__ import annotations

import importlib
from typing import Any

# submodule -> the public names it defines; each loads on first use
_EXPORTS = {
    "data": ("NAMED_DATASETS", "DataError", "Dataset", "load_dataset"),
    "device": ("DeviceError", "resolve_device"),
    "engine": ("StackOutcome", "resolved_batch_size", "stack_key", "train_folds", "train_stack"),
    "fold_data": ("FoldData", "epoch_orders", "prepare_folds"),
    "folds": ("Fold", "FoldScaling", "fit_fold_scaling", "make_folds"),
    "stacked_mlp": ("MLPConfig", "StackedMLP", "build_mlp"),
    "stacked_optim": ("OptimizerConfig", "StackedOptimizer"),
    "train_config": ("CVResult", "EpochReport", "TrainConfig", "TrainingDiverged"),
    "vocabulary": ("OPTIMIZER_NAMES",),
}
_SUBMODULE_OF = {name: submodule for submodule, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SUBMODULE_OF)


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
