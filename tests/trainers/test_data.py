"""Tests for trainers.data: named sets, the synthetic problem and CSV loading rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from trainers.data import NAMED_DATASETS, DataError, Dataset, fingerprint, load_dataset

NAMED = [
    # name, task, shape, n_classes
    ("synthetic", "regression", (1000, 10), None),
    ("diabetes", "regression", (442, 10), None),
    ("breast_cancer", "classification", (569, 30), 2),
    ("digits", "classification", (1797, 64), 10),
    ("wine", "classification", (178, 13), 3),
    ("iris", "classification", (150, 4), 3),
]


def write_csv(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_named_list_matches_cases():
    assert tuple(name for name, *_ in NAMED) == NAMED_DATASETS


@pytest.mark.parametrize(("name", "task", "shape", "n_classes"), NAMED)
def test_named_sets_load(name, task, shape, n_classes):
    ds = load_dataset(name)
    assert isinstance(ds, Dataset)
    assert ds.name == name
    assert ds.task == task
    assert ds.X.shape == shape
    assert ds.X.dtype == np.float32
    assert np.isfinite(ds.X).all()
    assert ds.y.shape == (shape[0],)
    assert len(ds.feature_names) == shape[1]
    assert ds.n_classes == n_classes
    assert len(ds.fingerprint) == 16
    int(ds.fingerprint, 16)  # hex
    if task == "regression":
        assert ds.y.dtype == np.float32
        assert ds.class_labels is None
    else:
        assert ds.y.dtype == np.int64
        assert len(ds.class_labels) == n_classes
        assert set(np.unique(ds.y)) == set(range(n_classes))


def test_iris_keeps_class_names():
    assert load_dataset("iris").class_labels == ("setosa", "versicolor", "virginica")


@pytest.mark.parametrize(
    ("name", "task"),
    [("iris", "regression"), ("diabetes", "classification"), ("synthetic", "classification")],
)
def test_named_set_with_opposite_task_is_rejected(name, task):
    with pytest.raises(DataError, match=rf"{name}.*{task}.*(regression|classification) problem"):
        load_dataset(name, task=task)


def test_named_set_with_matching_task_is_accepted():
    assert load_dataset("iris", task="classification").task == "classification"


def test_named_set_rejects_target():
    with pytest.raises(DataError, match="only to CSV"):
        load_dataset("wine", target="label")


@pytest.mark.parametrize("task", ["regress", "", "Classification"])
def test_unknown_task(task):
    with pytest.raises(DataError, match="auto, regression, classification"):
        load_dataset("iris", task=task)


def test_synthetic_is_deterministic_per_seed():
    a = load_dataset("synthetic", seed=3, n_samples=200, n_features=5)
    b = load_dataset("synthetic", seed=3, n_samples=200, n_features=5)
    c = load_dataset("synthetic", seed=4, n_samples=200, n_features=5)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.fingerprint == b.fingerprint
    assert not np.array_equal(a.X, c.X)
    assert a.fingerprint != c.fingerprint
    assert a.X.shape == (200, 5)
    assert a.feature_names == ("x0", "x1", "x2", "x3", "x4")


@pytest.mark.parametrize("n_features", [1, 2, 10])
def test_synthetic_has_signal(n_features):
    ds = load_dataset("synthetic", noise=0.1, n_features=n_features)
    train, test = slice(0, 800), slice(800, None)
    r2 = LinearRegression().fit(ds.X[train], ds.y[train]).score(ds.X[test], ds.y[test])
    assert r2 > 0.3


def test_synthetic_noise_lowers_signal():
    def r2(noise: float) -> float:
        ds = load_dataset("synthetic", noise=noise)
        return LinearRegression().fit(ds.X, ds.y).score(ds.X, ds.y)

    assert r2(0.1) > r2(3.0)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"n_samples": 1}, "n_samples"), ({"n_features": 0}, "n_features"), ({"noise": -1}, "noise")],
)
def test_synthetic_rejects_bad_parameters(kwargs, key):
    with pytest.raises(DataError, match=key):
        load_dataset("synthetic", **kwargs)


# --------------------------------------------------------------------------- CSV happy paths


def test_csv_regression(tmp_path):
    path = write_csv(tmp_path, "a, b ,price\n1,2,10.5\n3,4.5,-2\n5,6,7\n")
    ds = load_dataset(path, target="price")
    assert ds.name == path
    assert ds.task == "regression"
    assert ds.feature_names == ("a", "b")
    np.testing.assert_array_equal(ds.X, np.array([[1, 2], [3, 4.5], [5, 6]], np.float32))
    np.testing.assert_array_equal(ds.y, np.array([10.5, -2, 7], np.float32))
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.float32
    assert ds.n_classes is None and ds.class_labels is None


def test_csv_target_in_the_middle_and_blank_lines(tmp_path):
    path = write_csv(tmp_path, "a,label,b\n1,cat,2\n\n3,dog,4\n")
    ds = load_dataset(path, target="label")
    assert ds.feature_names == ("a", "b")
    np.testing.assert_array_equal(ds.X, np.array([[1, 2], [3, 4]], np.float32))


def test_csv_string_labels_are_classification(tmp_path):
    path = write_csv(tmp_path, "x,species\n1,zebra\n2,ant\n3,zebra\n4,bee\n")
    ds = load_dataset(path, target="species")
    assert ds.task == "classification"
    assert ds.n_classes == 3
    assert ds.class_labels == ("ant", "bee", "zebra")
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [2, 0, 2, 1])


def test_csv_few_integers_are_classification(tmp_path):
    path = write_csv(tmp_path, "x,grade\n1,7\n2,3\n3,7.0\n")
    ds = load_dataset(path, target="grade")
    assert ds.task == "classification"
    assert ds.class_labels == (3, 7)
    np.testing.assert_array_equal(ds.y, [1, 0, 1])


def test_csv_many_integers_are_regression(tmp_path):
    rows = "".join(f"{i},{100 + i}\n" for i in range(30))
    ds = load_dataset(write_csv(tmp_path, "x,y\n" + rows), target="y")
    assert ds.task == "regression"


def test_csv_explicit_tasks_override_auto(tmp_path):
    path = write_csv(tmp_path, "x,y\n1,0\n2,1\n3,1\n")
    assert load_dataset(path, target="y", task="regression").task == "regression"
    assert load_dataset(path, target="y").task == "classification"
    rows = "".join(f"{i},{i}\n" for i in range(30))
    many = write_csv(tmp_path, "x,y\n" + rows, "many.csv")
    assert load_dataset(many, target="y", task="classification").n_classes == 30


def test_fingerprint_is_stable_and_tracks_data(tmp_path):
    a = load_dataset(write_csv(tmp_path, "x,y\n1,2.5\n2,3.5\n", "a.csv"), target="y")
    b = load_dataset(write_csv(tmp_path, "x,y\n1,2.5\n2,3.5\n", "b.csv"), target="y")
    c = load_dataset(write_csv(tmp_path, "x,y\n1,2.5\n2,3.6\n", "c.csv"), target="y")
    d = load_dataset(write_csv(tmp_path, "x,y\n1,2.5\n9,3.5\n", "d.csv"), target="y")
    assert a.fingerprint == b.fingerprint  # same data, different file
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    assert load_dataset("iris").fingerprint == load_dataset("iris").fingerprint


def test_fingerprint_depends_on_task():
    X = np.zeros((3, 1), np.float32)
    y = np.zeros(3, np.float32)
    assert fingerprint(X, y, "regression") != fingerprint(X, y, "classification")
    assert fingerprint(X, y, "regression") == fingerprint(X.copy(), y.copy(), "regression")


def test_dataset_is_frozen():
    ds = load_dataset("iris")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.task = "regression"  # type: ignore[misc]


# --------------------------------------------------------------------------- CSV errors

# (file text, target, task, fragments the message must contain besides the path)
CSV_ERRORS = {
    "empty file": ("", "y", "auto", ["empty"]),
    "blank file": ("\n  \n", "y", "auto", ["empty"]),
    "no header": ("1,2,3\n4,5,6\n", "y", "auto", ["no header", "1,2,3"]),
    "header only": ("a,y\n", "y", "auto", ["no data rows"]),
    "unnamed column": (",a,y\n0,1,2\n", "y", "auto", ["column 1", "empty name", "index"]),
    "duplicate column": ("a,a,y\n1,2,3\n", "y", "auto", ["duplicate", "'a'"]),
    "ragged row": ("a,y\n1,2\n3\n", "y", "auto", ["line 3", "1 fields", "2 columns"]),
    "no target given": ("a,y\n1,2\n", None, "auto", ["target", "a, y"]),
    "target missing": ("age,income,Price\n1,2,3\n", "price", "auto", ["'price'", "'Price'"]),
    "target typo": ("age,income,label\n1,2,3\n", "lable", "auto", ["'lable'", "'label'"]),
    "only target column": ("y\n1\n2\n", "y", "auto", ["at least 1 feature"]),
    "non-numeric feature": (
        "a,color,y\n1,2,0\n2,red,1\n",
        "y",
        "auto",
        [
            "'color'",
            "row 2",
            "line 3",
            "'red'",
            "not a number",
            "Encode",
            "drop",
            "or set dataset.categorical: onehot.",
        ],
    ),
    "empty feature cell": (
        "a,b,y\n1,,0\n2,3,1\n",
        "y",
        "auto",
        ["'b'", "row 1", "empty cell", "or set dataset.missing: drop_rows."],
    ),
    "nan feature": (
        "a,b,y\n1,2,0\n2,nan,1\n",
        "y",
        "auto",
        ["'b'", "row 2", "'nan'", "finite", "or set dataset.missing: drop_rows."],
    ),
    "inf feature": ("a,b,y\n1,-inf,0\n2,3,1\n", "y", "auto", ["'b'", "row 1", "'-inf'"]),
    "float32 overflow": ("a,y\n1e300,0\n2,1\n", "y", "auto", ["'a'", "row 1", "'1e300'"]),
    "empty target cell": (
        "a,y\n1,0\n2,\n",
        "y",
        "auto",
        ["'y'", "row 2", "missing", "or set dataset.missing: drop_rows."],
    ),
    "nan target": (
        "a,y\n1,NaN\n2,1\n",
        "y",
        "auto",
        ["'y'", "row 1", "'NaN'", "finite", "or set dataset.missing: drop_rows."],
    ),
    "inf target in labels": ("a,y\n1,cat\n2,inf\n", "y", "auto", ["'y'", "row 2", "'inf'"]),
    "text target for regression": (
        "a,y\n1,1.5\n2,oops\n",
        "y",
        "regression",
        ["'y'", "row 2", "'oops'", "regression", "classification"],
    ),
    "single class": ("a,y\n1,cat\n2,cat\n", "y", "auto", ["'y'", "2 classes", "'cat'"]),
    "single integer class": ("a,y\n1,4\n2,4\n", "y", "classification", ["'y'", "2 classes", "4"]),
    "fractional class": ("a,y\n1,0\n2,0.5\n", "y", "classification", ["'y'", "row 2", "'0.5'"]),
}


@pytest.mark.parametrize(
    ("text", "target", "task", "fragments"), CSV_ERRORS.values(), ids=CSV_ERRORS
)
def test_csv_errors(tmp_path, text, target, task, fragments):
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_dataset(path, target=target, task=task)
    message = str(info.value)
    assert path in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_file_names_path_and_suggests_named_set(tmp_path):
    with pytest.raises(DataError, match="file not found") as info:
        load_dataset(str(tmp_path / "nope.csv"), target="y")
    assert str(tmp_path / "nope.csv") in str(info.value)
    with pytest.raises(DataError, match="'diabetes'"):
        load_dataset("diabetis")


def test_directory_is_not_a_csv(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        load_dataset(str(tmp_path), target="y")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,y\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8") as info:
        load_dataset(str(path), target="y")
    assert str(path) in str(info.value)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize(
    "text",
    ["a,b,y\n1,-inf,0\n2,3,1\n", "a,y\n1e300,0\n2,1\n", "a,y\n1,inf\n2,1\n"],
    ids=["inf feature", "float32 overflow", "inf target"],
)
def test_infinite_values_do_not_suggest_dropping_rows(tmp_path, text):
    with pytest.raises(DataError) as info:
        load_dataset(write_csv(tmp_path, text), target="y")
    assert "dataset.missing" not in str(info.value)


def test_a_text_target_is_not_a_categorical_feature_problem(tmp_path):
    path = write_csv(tmp_path, "a,y\n1,1.5\n2,oops\n")
    with pytest.raises(DataError) as info:
        load_dataset(path, target="y", task="regression")
    assert "categorical" not in str(info.value)


# --------------------------------------------------------------------------- categorical="onehot"


def test_onehot_encodes_each_text_column_in_sorted_value_order(tmp_path):
    path = write_csv(
        tmp_path,
        "size,color,shape,price\n1,red,round,10.5\n2,blue,square,11\n3,red,square,12\n"
        "4,green,round,13\n",
    )
    ds = load_dataset(path, target="price", categorical="onehot")
    assert ds.feature_names == (
        "size",
        "color=blue",
        "color=green",
        "color=red",
        "shape=round",
        "shape=square",
    )
    expected = [
        [1, 0, 0, 1, 1, 0],
        [2, 1, 0, 0, 0, 1],
        [3, 0, 0, 1, 0, 1],
        [4, 0, 1, 0, 1, 0],
    ]
    np.testing.assert_array_equal(ds.X, np.array(expected, np.float32))
    assert ds.X.dtype == np.float32
    np.testing.assert_array_equal(ds.y, np.array([10.5, 11, 12, 13], np.float32))
    assert ds.fingerprint == fingerprint(ds.X, ds.y, "regression")


def test_onehot_never_encodes_the_target(tmp_path):
    path = write_csv(tmp_path, "color,label\nred,cat\nblue,dog\nred,dog\n")
    ds = load_dataset(path, target="label", categorical="onehot")
    assert ds.feature_names == ("color=blue", "color=red")
    assert ds.task == "classification" and ds.class_labels == ("cat", "dog")
    np.testing.assert_array_equal(ds.y, [0, 1, 1])


def test_onehot_treats_a_column_with_any_text_cell_as_text(tmp_path):
    path = write_csv(tmp_path, "code,y\n1,0\n2,1\nx,0\n1,1\n")
    ds = load_dataset(path, target="y", categorical="onehot")
    assert ds.feature_names == ("code=1", "code=2", "code=x")
    np.testing.assert_array_equal(ds.X, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_onehot_leaves_a_numeric_file_as_it_was(tmp_path):
    path = write_csv(tmp_path, "a,b,y\n1,2,0.5\n3,4,1.5\n")
    plain = load_dataset(path, target="y")
    encoded = load_dataset(path, target="y", categorical="onehot")
    assert encoded.feature_names == plain.feature_names == ("a", "b")
    np.testing.assert_array_equal(encoded.X, plain.X)
    assert encoded.fingerprint == plain.fingerprint


def test_onehot_fingerprint_follows_the_encoded_values(tmp_path):
    def load(name, text):
        return load_dataset(write_csv(tmp_path, text, name), target="y", categorical="onehot")

    a = load("a.csv", "c,y\nred,1\nblue,2\nred,3\n")
    same = load("same.csv", "c,y\nred,1\nblue,2\nred,3\n")
    swapped = load("swapped.csv", "c,y\nblue,1\nred,2\nred,3\n")
    assert a.fingerprint == same.fingerprint == fingerprint(a.X, a.y, a.task)
    assert a.fingerprint != swapped.fingerprint


def test_onehot_refuses_a_likely_id_column(tmp_path):
    rows = "".join(f"user{i},{i % 2}\n" for i in range(51))
    path = write_csv(tmp_path, "user_id,y\n" + rows)
    with pytest.raises(DataError) as info:
        load_dataset(path, target="y", categorical="onehot")
    message = str(info.value)
    for fragment in (path, "'user_id'", "51 distinct values", "50", "ID", "Drop column 'user_id'"):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_onehot_accepts_fifty_values(tmp_path):
    rows = "".join(f"v{i:02d},{i % 2}\n" for i in range(50))
    ds = load_dataset(write_csv(tmp_path, "c,y\n" + rows), target="y", categorical="onehot")
    assert ds.X.shape == (50, 50)
    assert ds.feature_names[0] == "c=v00" and ds.feature_names[-1] == "c=v49"
    np.testing.assert_array_equal(ds.X, np.eye(50, dtype=np.float32))


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "c,y\nred,0\n,1\nblue,0\n",
            ["'c'", "row 2", "line 3", "empty cell", "or set dataset.missing: drop_rows."],
        ),
        ("c,y\nred,0\nnan,1\nblue,0\n", ["'c'", "row 2", "'nan'", "dataset.missing: drop_rows"]),
        ("c,y\nred,0\ninf,1\nblue,0\n", ["'c'", "row 2", "'inf'", "finite"]),
    ],
    ids=["empty", "nan", "inf"],
)
def test_onehot_keeps_missing_and_infinite_cells_errors(tmp_path, text, fragments):
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_dataset(path, target="y", categorical="onehot")
    message = str(info.value)
    assert path in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --------------------------------------------------------------------------- missing="drop_rows"


def test_drop_rows_drops_empty_and_nan_cells_in_features_and_target(tmp_path):
    path = write_csv(
        tmp_path, "a,b,y\n1,,0.5\n2,3,1.5\n4,NaN,2.5\n5,6,3.5\n7,8,\n9,10,nan\n11,12,4.5\n"
    )
    ds = load_dataset(path, target="y", missing="drop_rows")
    assert ds.dropped_rows == 4
    assert ds.n_samples == 3
    np.testing.assert_array_equal(ds.X, np.array([[2, 3], [5, 6], [11, 12]], np.float32))
    np.testing.assert_array_equal(ds.y, np.array([1.5, 3.5, 4.5], np.float32))
    assert ds.fingerprint == fingerprint(ds.X, ds.y, "regression")


def test_drop_rows_on_a_complete_file_drops_nothing(tmp_path):
    path = write_csv(tmp_path, "a,y\n1,0.5\n2,1.5\n")
    plain = load_dataset(path, target="y")
    kept = load_dataset(path, target="y", missing="drop_rows")
    assert plain.dropped_rows == kept.dropped_rows == 0
    assert kept.fingerprint == plain.fingerprint


def test_datasets_drop_nothing_by_default():
    assert load_dataset("iris").dropped_rows == 0


def test_drop_rows_keeps_the_files_row_numbers_in_later_errors(tmp_path):
    path = write_csv(tmp_path, "a,y\n,0\n1,1\n2,0\nred,1\n")
    with pytest.raises(DataError) as info:
        load_dataset(path, target="y", missing="drop_rows")
    assert "column 'a', row 4 (line 5): value 'red' is not a number" in str(info.value)


def test_drop_rows_then_onehot_encodes_only_the_rows_kept(tmp_path):
    path = write_csv(tmp_path, "color,n,y\nred,1,0\n,2,1\nblue,3,1\ngreen,,0\nred,5,1\n")
    ds = load_dataset(path, target="y", categorical="onehot", missing="drop_rows")
    assert ds.dropped_rows == 2
    assert ds.feature_names == ("color=blue", "color=red", "n")
    np.testing.assert_array_equal(ds.X, np.array([[0, 1, 1], [1, 0, 3], [0, 1, 5]], np.float32))
    np.testing.assert_array_equal(ds.y, [0, 1, 1])


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a,y\n1,-inf\n2,1\n3,0\n", ["'y'", "row 1", "'-inf'"]),
        ("a,y\ninf,1\n2,0\n3,1\n", ["'a'", "row 1", "'inf'", "finite"]),
    ],
    ids=["target", "feature"],
)
def test_drop_rows_keeps_inf_an_error(tmp_path, text, fragments):
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_dataset(path, target="y", missing="drop_rows")
    message = str(info.value)
    assert path in message and "dataset.missing" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_drop_rows_must_leave_two_rows(tmp_path):
    path = write_csv(tmp_path, "a,b,y\n1,,0\n2,3,1\n,4,0\n")
    with pytest.raises(DataError) as info:
        load_dataset(path, target="y", missing="drop_rows")
    message = str(info.value)
    for fragment in (
        path,
        "dataset.missing: drop_rows",
        "dropped 2 of 3 rows",
        "leaving 1",
        "at least 2",
    ):
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --------------------------------------------------------------------------- where the options apply


@pytest.mark.parametrize(
    ("options", "key", "value"),
    [
        ({"categorical": "onehot"}, "categorical", "'onehot'"),
        ({"missing": "drop_rows"}, "missing", "'drop_rows'"),
    ],
)
@pytest.mark.parametrize("name", ["iris", "synthetic"])
def test_named_sets_refuse_the_csv_options(name, options, key, value):
    with pytest.raises(DataError) as info:
        load_dataset(name, **options)
    assert str(info.value).startswith(f"{name}: {key}={value} applies only to CSV files")
    assert f"leave {key} unset" in str(info.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            {"categorical": "ordinal"},
            "categorical='ordinal' is not a known mode; use one of error, onehot.",
        ),
        (
            {"missing": "impute"},
            "missing='impute' is not a known mode; use one of error, drop_rows.",
        ),
    ],
)
@pytest.mark.parametrize("csv", [True, False], ids=["csv", "named"])
def test_unknown_modes_are_refused(tmp_path, options, fragment, csv):
    source = write_csv(tmp_path, "a,y\n1,2\n") if csv else "iris"
    with pytest.raises(DataError) as info:
        load_dataset(source, target="y" if csv else None, **options)
    assert str(info.value) == f"{source}: {fragment}"
