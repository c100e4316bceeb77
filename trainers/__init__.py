"""How to train: data, folds, the stacked MLP, functional optimizers and the fold-stacked engine.

This package depends on torch, numpy and scikit-learn only. It never imports optuna, mlflow or
``sweep``; progress leaves it through the ``on_epoch`` callback of :func:`train_folds`.
"""

from trainers.data import NAMED_DATASETS, DataError, Dataset, load_dataset
from trainers.device import DeviceError, resolve_device
from trainers.engine import StackOutcome, resolved_batch_size, stack_key, train_folds, train_stack
from trainers.fold_data import FoldData, epoch_orders, prepare_folds
from trainers.folds import Fold, FoldScaling, fit_fold_scaling, make_folds
from trainers.stacked_mlp import MLPConfig, StackedMLP, build_mlp
from trainers.stacked_optim import OPTIMIZER_NAMES, OptimizerConfig, StackedOptimizer
from trainers.train_config import CVResult, EpochReport, TrainConfig, TrainingDiverged

__all__ = [
    "NAMED_DATASETS",
    "OPTIMIZER_NAMES",
    "CVResult",
    "DataError",
    "Dataset",
    "DeviceError",
    "EpochReport",
    "Fold",
    "FoldData",
    "FoldScaling",
    "MLPConfig",
    "OptimizerConfig",
    "StackedMLP",
    "StackOutcome",
    "StackedOptimizer",
    "TrainConfig",
    "TrainingDiverged",
    "build_mlp",
    "epoch_orders",
    "fit_fold_scaling",
    "load_dataset",
    "make_folds",
    "prepare_folds",
    "resolve_device",
    "resolved_batch_size",
    "stack_key",
    "train_folds",
    "train_stack",
]
