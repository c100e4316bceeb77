"""Load the data a sweep trains on: a synthetic problem, a scikit-learn bundled set, or a CSV file.

Every loader returns a :class:`Dataset` with float32 features, an encoded target and a
fingerprint for provenance. Bad input raises :class:`DataError` with a message that names the
source, the column, the rule that was broken, the offending value and how to fix it.

A CSV file must be numeric and complete unless the user opts in: ``categorical="onehot"``
one-hot encodes its text feature columns, ``missing="drop_rows"`` drops the rows with an
empty or NaN cell.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CATEGORICAL_MODES",
    "MISSING_MODES",
    "NAMED_DATASETS",
    "TASKS",
    "DataError",
    "Dataset",
    "load_dataset",
]

TASKS: tuple[str, ...] = ("auto", "regression", "classification")
NAMED_DATASETS: tuple[str, ...] = (
    "synthetic",
    "diabetes",
    "breast_cancer",
    "digits",
    "wine",
    "iris",
)

# A numeric, integer-valued target with at most this many distinct values is a classification
# target when task="auto"; anything else numeric is a regression target.
MAX_AUTO_CLASSES = 20
# What a CSV file's text feature columns and its empty or NaN cells become; "error" refuses them.
CATEGORICAL_MODES: tuple[str, ...] = ("error", "onehot")
MISSING_MODES: tuple[str, ...] = ("error", "drop_rows")
# A text column with more distinct values than this is refused by categorical="onehot": it is
# most likely an ID or free text, and would add one mostly-zero column per row.
MAX_ONEHOT_VALUES = 50
_FLOAT32_MAX = float(np.finfo(np.float32).max)

_NATURAL_TASK: dict[str, str] = {
    "synthetic": "regression",
    "diabetes": "regression",
    "breast_cancer": "classification",
    "digits": "classification",
    "wine": "classification",
    "iris": "classification",
}


class DataError(ValueError):
    """Bad data.

    The message names the source (file or data set), the column/key, the rule, the value,
    and how to fix it.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """A supervised learning problem held in memory.

    Attributes:
        name: "synthetic", a named scikit-learn set, or the CSV path.
        X: float32 features, shape (n_samples, n_features), all finite.
        y: regression: float32, shape (n_samples,); classification: int64 class indices
            0..n_classes-1.
        task: "regression" or "classification".
        n_classes: number of classes, None for regression.
        feature_names: one name per feature column.
        class_labels: the original labels in index order (classification), else None.
        fingerprint: first 16 hex chars of a sha256 over X, y and task, for provenance.
        dropped_rows: rows of the file left out for an empty or NaN cell
            (``missing="drop_rows"``); 0 otherwise.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    task: str
    n_classes: int | None
    feature_names: tuple[str, ...]
    class_labels: tuple | None
    fingerprint: str
    dropped_rows: int = 0

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input values per sample: the feature columns of a table, every pixel of an
        image (see :attr:`sample_shape` for the shape)."""
        return int(np.prod(self.X.shape[1:]))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(n_features,)`` for a table, ``(C, H, W)`` for images."""
        return tuple(int(d) for d in self.X.shape[1:])


def fingerprint(X: np.ndarray, y: np.ndarray, task: str) -> str:
    """Hash the data that a model sees, to tell data sets apart in run records.

    Example: ``fingerprint(np.zeros((2, 1), np.float32), np.zeros(2, np.float32), "regression")``
    """
    h = hashlib.sha256()
    for arr in (X, y):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update(task.encode())
    return h.hexdigest()[:16]


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    task: str = "auto",
    n_samples: int = 1000,
    n_features: int = 10,
    noise: float = 0.1,
    seed: int = 0,
    categorical: str = "error",
    missing: str = "error",
) -> Dataset:
    """Load a named data set or a CSV file.

    Args:
        source: one of :data:`NAMED_DATASETS`, or a path to a CSV file with a header row.
        target: the target column of a CSV file (required for CSV, not allowed otherwise).
        task: "auto", "regression" or "classification". For named sets "auto" means the
            natural task; for CSV files "auto" infers it from the target column.
        n_samples: rows of the synthetic problem.
        n_features: feature columns of the synthetic problem.
        noise: standard deviation of the synthetic problem's Gaussian noise.
        seed: seed of the synthetic problem.
        categorical: CSV only. "error" refuses a text feature column; "onehot" turns each into
            one 0/1 column per distinct value, named ``column=value``, in sorted order.
        missing: CSV only. "error" refuses an empty or NaN cell; "drop_rows" drops the rows
            that hold one (see :attr:`Dataset.dropped_rows`).

    Returns:
        The loaded :class:`Dataset`.

    Raises:
        DataError: the source, target or task is invalid, or the file breaks a data rule.

    Example: ``ds = load_dataset("iris"); ds.task == "classification"``
    """
    source = os.fspath(source)
    if task not in TASKS:
        raise DataError(
            f"{source}: task={task!r} is not a known task; use one of {', '.join(TASKS)}."
        )
    options = {"categorical": (categorical, CATEGORICAL_MODES), "missing": (missing, MISSING_MODES)}
    for key, (value, modes) in options.items():
        if value not in modes:
            raise DataError(
                f"{source}: {key}={value!r} is not a known mode; use one of {', '.join(modes)}."
            )
    if source in _NATURAL_TASK:
        natural = _NATURAL_TASK[source]
        if task not in ("auto", natural):
            raise DataError(
                f"{source}: task={task!r} does not match this data set, which is a {natural} "
                f"problem; set task to 'auto' or {natural!r}, or use a CSV file for other tasks."
            )
        if target is not None:
            raise DataError(
                f"{source}: target={target!r} applies only to CSV files; the named data set "
                f"{source!r} has a fixed target, so leave target unset."
            )
        for key, (value, modes) in options.items():
            if value != modes[0]:
                raise DataError(
                    f"{source}: {key}={value!r} applies only to CSV files; the named data set "
                    f"{source!r} is numeric and complete, so leave {key} unset."
                )
        if source == "synthetic":
            X, y = _synthetic(n_samples=n_samples, n_features=n_features, noise=noise, seed=seed)
            names = tuple(f"x{i}" for i in range(X.shape[1]))
            return _make_dataset("synthetic", X, y, names, "regression", None)
        return _load_sklearn(source)
    return _load_csv(source, target=target, task=task, categorical=categorical, missing=missing)


# --------------------------------------------------------------------------- named sets


def _synthetic(*, n_samples: int, n_features: int, noise: float, seed: int):
    """A regression problem with signal: a linear part plus nonlinear interactions plus noise."""
    for key, value, low in (("n_samples", n_samples, 2), ("n_features", n_features, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise DataError(f"synthetic: {key}={value!r} must be an integer >= {low}.")
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise >= 0):
        raise DataError(f"synthetic: noise={noise!r} must be a finite number >= 0.")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w = rng.standard_normal(n_features) / math.sqrt(n_features)
    x0 = X[:, 0]
    x1 = X[:, 1] if n_features > 1 else X[:, 0]
    x2 = X[:, 2] if n_features > 2 else X[:, -1]
    signal = X @ w + np.tanh(x0 * x1) + 0.5 * np.sin(math.pi * x2)
    y = signal + noise * rng.standard_normal(n_samples)
    return X.astype(np.float32), y.astype(np.float32)


def _load_sklearn(name: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = tuple(str(f) for f in bunch.feature_names)
    X = np.asarray(bunch.data, dtype=np.float32)
    if _NATURAL_TASK[name] == "regression":
        y = np.asarray(bunch.target, dtype=np.float32)
        return _make_dataset(name, X, y, names, "regression", None)
    y = np.asarray(bunch.target, dtype=np.int64)
    labels = tuple(np.asarray(bunch.target_names).tolist())
    return _make_dataset(name, X, y, names, "classification", labels)


def _make_dataset(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    feature_names: tuple[str, ...],
    task: str,
    class_labels: tuple | None,
    *,
    dropped_rows: int = 0,
) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64 if task == "classification" else np.float32)
    return Dataset(
        name=name,
        X=X,
        y=y,
        task=task,
        n_classes=None if class_labels is None else len(class_labels),
        feature_names=feature_names,
        class_labels=class_labels,
        fingerprint=fingerprint(X, y, task),
        dropped_rows=dropped_rows,
    )


# --------------------------------------------------------------------------- CSV files


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Return the stripped header and the non-blank data rows with their line numbers."""
    p = Path(path)
    if not p.exists():
        hint = difflib.get_close_matches(path, NAMED_DATASETS, n=1)
        also = f" Did you mean the named data set {hint[0]!r}?" if hint else ""
        raise DataError(
            f"{path}: file not found. Give an existing CSV path or one of the named data sets "
            f"{', '.join(NAMED_DATASETS)}.{also}"
        )
    if not p.is_file():
        raise DataError(f"{path}: is not a regular file; give the path of a CSV file.")
    try:
        with p.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"{path}: cannot be read as a UTF-8 CSV file ({e}); check the permissions, "
            "encoding and quoting."
        ) from e
    if not rows:
        raise DataError(f"{path}: file is empty; expected a header row of column names.")
    header = [c.strip() for c in rows[0][1]]
    if all(_to_float(c) is not None for c in header):
        raise DataError(
            f"{path}: no header: the first line {','.join(header)!r} is all numbers; add a "
            "header row with one name per column."
        )
    for i, name in enumerate(header):
        if not name:
            raise DataError(
                f"{path}: header column {i + 1} has an empty name; name every column "
                "(a leading unnamed column is often an index written by pandas: drop it, "
                "or write the file with index=False)."
            )
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(
            f"{path}: duplicate column name(s) {dupes} in the header; give each column a "
            "unique name."
        )
    data = rows[1:]
    if not data:
        raise DataError(f"{path}: has a header but no data rows; add at least one row of data.")
    for line, row in data:
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {line} has {len(row)} fields but the header has {len(header)} "
                "columns; every row needs one value per column (check for stray commas or "
                "unquoted text)."
            )
    return header, data


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


# Where a cell came from: its data row (1-based, counted in the file) and its line in the file.
# Rows keep these numbers when missing="drop_rows" leaves others out.
_Position = tuple[int, int]

_DROP_ROWS_HINT = ", or set dataset.missing: drop_rows"
_ONEHOT_HINT = ", or set dataset.categorical: onehot"


def _where(path: str, column: str, position: _Position) -> str:
    row, line = position
    return f"{path}: column {column!r}, row {row} (line {line})"


def _is_missing(cell: str) -> bool:
    """An empty cell, or one that reads as NaN: what missing="drop_rows" drops."""
    value = _to_float(cell)
    return not cell or (value is not None and math.isnan(value))


def _bad_cell_message(where: str, column: str, cell: str, role: str) -> str:
    """Why ``cell`` is not a finite float32 number, and how to fix it."""
    value = _to_float(cell)
    if not cell:
        return (
            f"{where}: empty cell (missing value); {role} values must be finite numbers. "
            f"Fill in or drop the rows with missing values{_DROP_ROWS_HINT}."
        )
    if value is None:
        onehot = _ONEHOT_HINT if role == "feature" else ""
        return (
            f"{where}: value {cell!r} is not a number; {role} columns must be numeric. "
            f"Encode column {column!r} as numbers (e.g. one-hot or ordinal) or drop it{onehot}."
        )
    drop = _DROP_ROWS_HINT if math.isnan(value) else ""  # inf is an error, not a missing value
    return (
        f"{where}: value {cell!r} is not a finite float32 number (NaN, inf or "
        f"|value| > 3.4e38); {role} values must be finite. Fill in, clip or drop "
        f"these rows{drop}."
    )


def _numeric_column(
    path: str, column: str, cells: Sequence[str], positions: Sequence[_Position], role: str
) -> np.ndarray:
    """Parse one column to float64, raising DataError on the first bad or non-finite cell."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        value = _to_float(cell)
        if value is None or not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            where = _where(path, column, positions[i])
            raise DataError(_bad_cell_message(where, column, cell, role))
        out[i] = value
    return out


def _onehot_column(
    path: str, column: str, cells: Sequence[str], positions: Sequence[_Position]
) -> tuple[np.ndarray, list[str]]:
    """One float32 0/1 column per distinct value of a text column, in sorted value order."""
    for i, cell in enumerate(cells):
        value = _to_float(cell)
        if not cell or (value is not None and not math.isfinite(value)):
            where = _where(path, column, positions[i])
            raise DataError(_bad_cell_message(where, column, cell, "feature"))
    values = sorted(set(cells))
    if len(values) > MAX_ONEHOT_VALUES:
        raise DataError(
            f"{path}: column {column!r} has {len(values)} distinct values, more than the "
            f"{MAX_ONEHOT_VALUES} that dataset.categorical: onehot encodes; it looks like an ID "
            f"or free-text column. Drop column {column!r} from the file."
        )
    index = {value: j for j, value in enumerate(values)}
    encoded = np.zeros((len(cells), len(values)), dtype=np.float32)
    encoded[np.arange(len(cells)), [index[cell] for cell in cells]] = 1.0
    return encoded, values


def _feature_matrix(
    path: str,
    features: Sequence[str],
    columns: dict[str, list[str]],
    positions: Sequence[_Position],
    categorical: str,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """X and its column names; with categorical="onehot" each text column becomes several."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for column in features:
        cells = columns[column]
        if categorical == "onehot" and any(c and _to_float(c) is None for c in cells):
            encoded, values = _onehot_column(path, column, cells, positions)
            blocks.append(encoded)
            names += [f"{column}={value}" for value in values]
        else:
            blocks.append(_numeric_column(path, column, cells, positions, "feature")[:, None])
            names.append(column)
    return np.hstack(blocks).astype(np.float32), tuple(names)


def _drop_incomplete_rows(
    path: str, columns: dict[str, list[str]], positions: Sequence[_Position]
) -> tuple[dict[str, list[str]], list[_Position], int]:
    """Leave out the rows with an empty or NaN cell; return the columns, positions and count."""
    keep = [
        i for i in range(len(positions)) if not any(_is_missing(c[i]) for c in columns.values())
    ]
    dropped = len(positions) - len(keep)
    if dropped and len(keep) < 2:
        raise DataError(
            f"{path}: dataset.missing: drop_rows dropped {dropped} of {len(positions)} rows "
            f"(each has an empty or NaN cell), leaving {len(keep)}; at least 2 rows must "
            "remain. Fill in the missing values, or remove the columns that hold most of them."
        )
    kept = {name: [cells[i] for i in keep] for name, cells in columns.items()}
    return kept, [positions[i] for i in keep], dropped


def _load_csv(
    path: str, *, target: str | None, task: str, categorical: str, missing: str
) -> Dataset:
    header, data = _read_rows(path)
    if target is None:
        raise DataError(
            f"{path}: no target column given; a CSV file needs target=<column>. "
            f"Available columns: {', '.join(header)}."
        )
    if target not in header:
        raise DataError(_missing_target_message(path, target, header))
    features = [c for c in header if c != target]
    if not features:
        raise DataError(
            f"{path}: the only column is the target {target!r}; at least 1 feature column "
            "is required."
        )
    positions = [(i + 1, line) for i, (line, _) in enumerate(data)]
    columns = {name: [row[j].strip() for _, row in data] for j, name in enumerate(header)}
    dropped = 0
    if missing == "drop_rows":
        columns, positions, dropped = _drop_incomplete_rows(path, columns, positions)
    X, names = _feature_matrix(path, features, columns, positions, categorical)
    y, task, labels = _encode_target(path, target, columns[target], positions, task)
    return _make_dataset(path, X, y, names, task, labels, dropped_rows=dropped)


def _missing_target_message(path: str, target: str, header: Sequence[str]) -> str:
    by_lower = {c.lower(): c for c in header}
    close = difflib.get_close_matches(target, header, n=1)
    guess = by_lower.get(target.strip().lower()) or (close[0] if close else None)
    hint = f" Did you mean {guess!r}?" if guess else ""
    return (
        f"{path}: target column {target!r} not found.{hint} Available columns: {', '.join(header)}."
    )


def _encode_target(
    path: str, column: str, cells: Sequence[str], positions: Sequence[_Position], task: str
) -> tuple[np.ndarray, str, tuple | None]:
    """Return (y, resolved task, class labels) for a CSV target column."""
    values = [_to_float(c) for c in cells]
    for i, (cell, value) in enumerate(zip(cells, values, strict=True)):
        where = _where(path, column, positions[i])
        if not cell:
            raise DataError(
                f"{where}: empty target cell (missing value); every row needs a target. "
                f"Fill in or drop these rows{_DROP_ROWS_HINT}."
            )
        if value is not None and not math.isfinite(value):
            drop = _DROP_ROWS_HINT if math.isnan(value) else ""
            raise DataError(
                f"{where}: target value {cell!r} is NaN or infinite; targets must be finite. "
                f"Fill in or drop these rows{drop}."
            )
    numeric = all(v is not None for v in values)

    if not numeric:
        i = next(i for i, v in enumerate(values) if v is None)
        if task == "regression":
            raise DataError(
                f"{_where(path, column, positions[i])}: target value {cells[i]!r} is not a "
                "number, but task='regression' needs a numeric target. Fix the value, or use "
                "task='classification' (or 'auto') for a label column."
            )
        return _encode_labels(path, column, list(cells))

    integral = all(float(v).is_integer() for v in values)
    if task == "auto":
        few = len(set(values)) <= MAX_AUTO_CLASSES
        task = "classification" if integral and few else "regression"
    if task == "regression":
        return (
            _numeric_column(path, column, cells, positions, "target").astype(np.float32),
            task,
            None,
        )
    if not integral:
        i = next(i for i, v in enumerate(values) if not float(v).is_integer())
        raise DataError(
            f"{_where(path, column, positions[i])}: target value {cells[i]!r} is not an "
            "integer, but a numeric classification target must hold integer class labels. "
            "Use task='regression' for a continuous target, or write the labels as integers "
            "or text."
        )
    return _encode_labels(path, column, [int(v) for v in values])


def _encode_labels(path: str, column: str, raw: list[Any]) -> tuple[np.ndarray, str, tuple]:
    """Encode labels (all str or all int) to indices 0..C-1 in sorted label order."""
    labels = tuple(sorted(set(raw)))
    if len(labels) < 2:
        raise DataError(
            f"{path}: column {column!r}: a classification target needs at least 2 classes, "
            f"but every row has the label {labels[0]!r}. Check the target column."
        )
    index = {label: i for i, label in enumerate(labels)}
    y = np.fromiter((index[v] for v in raw), dtype=np.int64, count=len(raw))
    return y, "classification", labels
