"""Samples of any shape go to the device once; folds come from any scikit-learn splitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from trainers.folds import Fold
from trainers.module_engine import prepare_module_folds

CPU = torch.device("cpu")


def test_images_and_splitter_pairs_become_padded_fold_rows():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 3, 4, 4)), rng.integers(0, 3, 10)
    folds = list(StratifiedKFold(3).split(X[:, 0, 0, 0], np.repeat([0, 1], 5)))
    data = prepare_module_folds(X, y, folds, device=CPU)
    assert data.sample_shape == (3, 4, 4) and data.inputs.dtype == torch.float32
    assert data.n_outputs == int(y.max()) + 1 and data.targets.dtype == torch.int64
    assert data.train_sizes == tuple(len(train) for train, _ in folds)
    assert data.val_inputs.shape == (3, max(data.val_sizes), 3, 4, 4)
    for k, (train, val) in enumerate(folds):
        assert data.train_rows[k, : len(train)].tolist() == list(train)
        assert data.val_mask[k].sum() == len(val)
        np.testing.assert_allclose(data.val_inputs[k, : len(val)], X[val].astype(np.float32))


@pytest.mark.parametrize(
    ("y", "n_outputs"),
    [(np.zeros(6, dtype=np.float32), 1), (np.zeros((6, 2)), 2), (np.array([0, 1] * 3), 2)],
)
def test_n_outputs_follows_the_targets(y, n_outputs):
    folds = [Fold(np.arange(3), np.arange(3, 6)), Fold(np.arange(3, 6), np.arange(3))]
    data = prepare_module_folds(np.zeros((6, 5, 2)), y, folds, device=CPU)
    assert data.n_outputs == n_outputs


@pytest.mark.parametrize(
    ("X", "y", "folds", "message"),
    [
        (np.zeros((4, 2)), np.zeros(3), list(KFold(2).split(np.zeros(4))), "X must be"),
        (np.zeros((4, 2)), np.zeros(4), [(np.arange(2), np.array([7]))], r"must lie in 0\.\.3"),
        (np.zeros((4, 2)), np.zeros(4), [(np.arange(2), np.array([], dtype=int))], "non-empty"),
        (np.zeros((4, 2)), np.zeros(4), [], "folds is empty"),
    ],
)
def test_bad_input_is_named(X, y, folds, message):
    with pytest.raises(ValueError, match=message):
        prepare_module_folds(X, y, folds, device=CPU)
