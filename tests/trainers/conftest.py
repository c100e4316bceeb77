"""Shared by the engine tests: small folds of unequal size, and one optimizer of every kind."""

from __future__ import annotations

import pytest
import torch

from trainers import OptimizerConfig, load_dataset, make_folds, prepare_folds

CPU = torch.device("cpu")
MIXED_OPTIMIZERS = [
    OptimizerConfig("adam", 0.01),
    OptimizerConfig("sgd", 0.05),
    OptimizerConfig("adam", 0.002, weight_decay=0.01),
    OptimizerConfig("rmsprop", 0.003, momentum=0.5),
    OptimizerConfig("momentum", 0.005),
    OptimizerConfig("adamw", 0.01),
]


@pytest.fixture(scope="module")
def data():
    """53 rows in 3 folds: train folds of 35/35/36 rows, so batch 8 leaves a short last batch
    and the 36-row fold has a step the others sit out."""
    dataset = load_dataset("synthetic", n_samples=53, n_features=4, seed=3)
    return prepare_folds(dataset, make_folds(dataset, n_folds=3, seed=0), device=CPU)
