"""Tests for trainers.folds: splitter choice, fold validation and leak-free per-fold scaling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold

from trainers.data import DataError, Dataset, fingerprint, load_dataset
from trainers.folds import Fold, FoldScaling, fit_fold_scaling, make_folds


def make_dataset(
    X: np.ndarray, y: np.ndarray, task: str = "regression", labels: tuple | None = None
) -> Dataset:
    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.int64 if task == "classification" else np.float32)
    return Dataset(
        name="toy",
        X=X,
        y=y,
        task=task,
        n_classes=None if labels is None else len(labels),
        feature_names=tuple(f"f{i}" for i in range(X.shape[1])),
        class_labels=labels,
        fingerprint=fingerprint(X, y, task),
    )


def with_X(ds: Dataset, X: np.ndarray) -> Dataset:
    return dataclasses.replace(ds, X=X, fingerprint=fingerprint(X, ds.y, ds.task))


def expected_splits(splitter, ds: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(ds.X, ds.y)]


def assert_same(folds: list[Fold], splits) -> None:
    assert len(folds) == len(splits)
    for fold, (tr, va) in zip(folds, splits, strict=True):
        np.testing.assert_array_equal(fold.train_idx, tr)
        np.testing.assert_array_equal(fold.val_idx, va)


# --------------------------------------------------------------------------- splitter choice


def test_regression_uses_shuffled_kfold():
    ds = load_dataset("diabetes")
    folds = make_folds(ds, n_folds=5, seed=7)
    assert_same(folds, expected_splits(KFold(5, shuffle=True, random_state=7), ds))


def test_classification_uses_stratified_kfold_by_default():
    ds = load_dataset("iris")
    folds = make_folds(ds, n_folds=5, seed=3)
    assert_same(folds, expected_splits(StratifiedKFold(5, shuffle=True, random_state=3), ds))
    for fold in folds:  # iris is balanced 50/50/50: each validation fold holds 10 per class
        np.testing.assert_array_equal(np.bincount(ds.y[fold.val_idx]), [10, 10, 10])


def test_stratify_false_uses_kfold_for_classification():
    ds = load_dataset("iris")
    folds = make_folds(ds, n_folds=5, stratify=False, seed=3)
    assert_same(folds, expected_splits(KFold(5, shuffle=True, random_state=3), ds))


def test_stratify_true_on_regression_is_rejected():
    with pytest.raises(DataError, match="stratify=True.*'regression'.*stratify: false"):
        make_folds(load_dataset("diabetes"), n_folds=5, stratify=True)


def test_seed_changes_folds_and_is_reproducible():
    ds = load_dataset("wine")
    a = make_folds(ds, n_folds=4, seed=1)
    b = make_folds(ds, n_folds=4, seed=1)
    c = make_folds(ds, n_folds=4, seed=2)
    assert all(np.array_equal(x.val_idx, y.val_idx) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.val_idx, y.val_idx) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(("name", "n_folds"), [("diabetes", 5), ("digits", 3), ("iris", 10)])
def test_every_row_is_validated_exactly_once(name, n_folds):
    ds = load_dataset(name)
    folds = make_folds(ds, n_folds=n_folds)
    assert len(folds) == n_folds
    val = np.concatenate([f.val_idx for f in folds])
    np.testing.assert_array_equal(np.sort(val), np.arange(ds.n_samples))
    for fold in folds:
        assert fold.train_idx.dtype == np.int64 and fold.val_idx.dtype == np.int64
        assert np.all(np.diff(fold.train_idx) > 0) and np.all(np.diff(fold.val_idx) > 0)
        assert np.intersect1d(fold.train_idx, fold.val_idx).size == 0
        assert fold.train_idx.size + fold.val_idx.size == ds.n_samples


# --------------------------------------------------------------------------- validation


def test_more_folds_than_rows():
    ds = make_dataset(np.arange(7.0)[:, None], np.arange(7.0))
    with pytest.raises(DataError) as info:
        make_folds(ds, n_folds=10)
    assert (
        "Cannot have number of folds n_folds=10 greater than the number of samples: n_samples=7."
        in str(info.value)
    )


@pytest.mark.parametrize("n_folds", [1, 0, -3, 2.5, True, "5"])
def test_bad_n_folds(n_folds):
    ds = load_dataset("diabetes")
    with pytest.raises(DataError, match=rf"n_folds={n_folds!r} must be an integer >= 2"):
        make_folds(ds, n_folds=n_folds)


def test_small_class_is_rejected_when_stratifying():
    y = np.array([0] * 10 + [1] * 10 + [2] * 3)
    ds = make_dataset(np.arange(23.0)[:, None], y, "classification", ("ant", "bee", "cat"))
    with pytest.raises(DataError) as info:
        make_folds(ds, n_folds=5)
    message = str(info.value)
    for fragment in ("'cat'", "3 member", "n_folds=5", "n_folds <= 3", "stratify: false"):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert len(make_folds(ds, n_folds=3)) == 3
    assert len(make_folds(ds, n_folds=5, stratify=False)) == 5


# --------------------------------------------------------------------------- custom splitters


def test_custom_kfold_is_used_as_is():
    ds = load_dataset("iris")
    splitter = KFold(3)  # no shuffle: contiguous blocks
    folds = make_folds(ds, n_folds=5, splitter=splitter)
    assert_same(folds, expected_splits(KFold(3), ds))
    np.testing.assert_array_equal(folds[0].val_idx, np.arange(50))


def test_custom_shuffle_split_is_used_as_is():
    ds = load_dataset("diabetes")
    splitter = ShuffleSplit(n_splits=4, test_size=0.25, random_state=0)
    folds = make_folds(ds, n_folds=5, splitter=splitter)
    assert_same(folds, expected_splits(splitter, ds))
    assert len(folds) == 4


def test_custom_splitter_errors_become_data_errors():
    ds = make_dataset(np.arange(7.0)[:, None], np.arange(7.0))
    with pytest.raises(DataError, match="cannot split the data.*n_samples=7"):
        make_folds(ds, n_folds=2, splitter=KFold(10))


def test_object_without_split_is_rejected():
    with pytest.raises(DataError, match="no split"):
        make_folds(load_dataset("iris"), n_folds=5, splitter=object())


class _LeakySplitter:
    """A hand-written splitter whose train and validation parts overlap."""

    def split(self, X, y=None):
        n = len(X)
        yield np.arange(n), np.arange(n // 2)


def test_overlapping_splits_are_rejected():
    with pytest.raises(DataError, match="both the train and the validation part"):
        make_folds(load_dataset("iris"), n_folds=5, splitter=_LeakySplitter())


# --------------------------------------------------------------------------- scaling


def test_scaling_matches_numpy_on_train_rows():
    ds = load_dataset("diabetes")
    folds = make_folds(ds, n_folds=5)
    s = fit_fold_scaling(ds, folds)
    assert isinstance(s, FoldScaling)
    assert s.x_mean.shape == s.x_std.shape == (5, ds.n_features)
    assert s.y_mean.shape == s.y_std.shape == (5,)
    for arr in (s.x_mean, s.x_std, s.y_mean, s.y_std):
        assert arr.dtype == np.float32
    for k, fold in enumerate(folds):
        X = ds.X[fold.train_idx].astype(np.float64)
        y = ds.y[fold.train_idx].astype(np.float64)
        np.testing.assert_allclose(s.x_mean[k], X.mean(0), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s.x_std[k], X.std(0), rtol=1e-6)
        np.testing.assert_allclose(s.y_mean[k], y.mean(), rtol=1e-6)
        np.testing.assert_allclose(s.y_std[k], y.std(), rtol=1e-6)


def test_classification_target_is_not_scaled():
    ds = load_dataset("wine")
    s = fit_fold_scaling(ds, make_folds(ds, n_folds=3))
    np.testing.assert_array_equal(s.y_mean, np.zeros(3, np.float32))
    np.testing.assert_array_equal(s.y_std, np.ones(3, np.float32))


def test_constant_columns_get_unit_std():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.full(40, 0.1), rng.normal(size=40), np.zeros(40)])
    ds = make_dataset(X, rng.normal(size=40))
    s = fit_fold_scaling(ds, make_folds(ds, n_folds=4))
    np.testing.assert_array_equal(s.x_std[:, 0], 1.0)
    np.testing.assert_array_equal(s.x_std[:, 2], 1.0)
    np.testing.assert_allclose(s.x_mean[:, 0], 0.1)
    assert np.all(s.x_std[:, 1] != 1.0)
    scaled = (ds.X - s.x_mean[0]) / s.x_std[0]
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaled[:, [0, 2]], 0.0, atol=1e-6)


def test_constant_target_gets_unit_std():
    ds = make_dataset(np.arange(10.0)[:, None], np.full(10, 3.0))
    s = fit_fold_scaling(ds, make_folds(ds, n_folds=2))
    np.testing.assert_array_equal(s.y_std, [1.0, 1.0])
    np.testing.assert_array_equal(s.y_mean, [3.0, 3.0])


def test_no_leakage_from_validation_rows():
    ds = load_dataset("synthetic", n_samples=200, n_features=4)
    folds = make_folds(ds, n_folds=5)
    base = fit_fold_scaling(ds, folds)
    k = 2
    val, train = folds[k].val_idx, folds[k].train_idx

    X = ds.X.copy()
    X[val] = X[val] * 100.0 + 1e4  # wildly change fold k's validation rows only
    y = ds.y.copy()
    y[val] = -1e4
    changed_val = dataclasses.replace(with_X(ds, X), y=y)
    after_val = fit_fold_scaling(changed_val, folds)
    for name in ("x_mean", "x_std", "y_mean", "y_std"):
        np.testing.assert_array_equal(getattr(after_val, name)[k], getattr(base, name)[k])
        # the other folds train on those rows, so their statistics must move
        assert not np.array_equal(getattr(after_val, name)[k - 1], getattr(base, name)[k - 1])

    X = ds.X.copy()
    X[train[0]] += 50.0  # change one train row of fold k
    after_train = fit_fold_scaling(with_X(ds, X), folds)
    assert not np.array_equal(after_train.x_mean[k], base.x_mean[k])
    assert not np.array_equal(after_train.x_std[k], base.x_std[k])


def test_no_folds_is_rejected():
    with pytest.raises(DataError, match="no folds"):
        fit_fold_scaling(load_dataset("iris"), [])
