"""A user's own data and model: a data factory's return checked into a :class:`Dataset`, and a
model factory tried on two real samples before any trial trains it.

A data factory is ``fn(**kwargs)`` returning ``(X, y)`` (numpy arrays, torch tensors or lists)
or a map-style ``torch.utils.data.Dataset`` of ``(x, y)`` pairs. A model factory is
``fn(input_shape=<one sample's shape>, n_outputs=<int>, **kwargs)`` returning an ``nn.Module``.

Example:
    >>> ds = load_factory_dataset("/home/me/exp/data.py:load", {}, task="auto")
    >>> check_model(make_cnn, {"channels": 8}, input_shape=ds.X.shape[1:],
    ...             n_outputs=ds.n_classes, sample=torch.from_numpy(ds.X[:2]), task=ds.task)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainers.data import MAX_AUTO_CLASSES, TASKS, DataError, Dataset, _encode_labels, fingerprint
from trainers.user_code import UserCodeError, describe_callable, error_summary, load_callable

__all__ = ["check_model", "default_max_bytes", "load_factory_dataset"]

_RETURN_FORM = "(X, y) arrays or a torch.utils.data.Dataset of (x, y) pairs"


def default_max_bytes() -> int | None:
    """Half the machine's physical memory: the most a Dataset may take once stacked (None if
    the platform cannot say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):
        return None


def load_factory_dataset(
    reference: str,
    kwargs: Mapping[str, Any],
    *,
    task: str = "auto",
    max_bytes: int | None = None,
) -> Dataset:
    """Call a user's data factory and check what it returns into a :class:`Dataset`.

    Args:
        reference: the factory, ``/abs/path/file.py:function`` or ``package.module:function``.
        kwargs: keyword arguments for the factory.
        task: "auto", "regression" or "classification". "auto": a non-numeric target, or an
            integer-valued one with at most ``MAX_AUTO_CLASSES`` values, is classification.
        max_bytes: the most a ``torch.utils.data.Dataset`` may take once stacked into tensors;
            None: :func:`default_max_bytes`.

    Returns:
        A :class:`Dataset` with float32 ``X`` of shape ``(n_samples, *sample_shape)``, ``y``
        encoded as the CSV loader does (int64 class indices with ``class_labels``, or float32),
        and ``name`` the reference.

    Raises:
        DataError: the reference cannot be loaded (the message is the
            :class:`~trainers.user_code.UserCodeError`'s), the factory raises, or what it
            returns breaks a data rule.

    Example:
        >>> ds = load_factory_dataset("search_spaces/digits_cnn_data.py:load_digits_images", {})
        >>> ds.X.shape, ds.task
        ((1797, 1, 8, 8), 'classification')
    """
    if task not in TASKS:
        raise DataError(
            f"{reference}: task={task!r} is not a known task; use one of {', '.join(TASKS)}."
        )
    try:
        factory = load_callable(reference)
    except UserCodeError as error:  # one exception type for every data problem
        raise DataError(str(error)) from error
    try:
        returned = factory(**dict(kwargs))
    except Exception as error:
        raise DataError(
            f"{reference}: the data factory raised {error_summary(error)} when called with kwargs "
            f"{dict(kwargs)!r}; fix the function or the dataset kwargs."
        ) from error
    if isinstance(returned, torch.utils.data.Dataset):
        X_raw, y_raw = _stack_dataset(reference, returned, max_bytes)
    elif isinstance(returned, tuple | list) and len(returned) == 2:
        X_raw, y_raw = returned
    else:
        kind = type(returned).__name__
        size = f" of length {len(returned)}" if isinstance(returned, tuple | list) else ""
        raise DataError(
            f"{reference}: the data factory returned a {kind}{size}; it must return "
            f"{_RETURN_FORM}, e.g. `return X, y`."
        )
    X = _array(reference, "X", X_raw)
    y = _array(reference, "y", y_raw)
    n_samples = _check_lengths(reference, X, y)
    X = _features(reference, X, n_samples)
    y, task, labels = _encode(reference, y, task)
    shape = X.shape[1:]
    return Dataset(
        name=reference,
        X=X,
        y=y,
        task=task,
        n_classes=None if labels is None else len(labels),
        feature_names=tuple(f"x{i}" for i in range(math.prod(shape))),
        class_labels=labels,
        fingerprint=fingerprint(X, y, task),
    )


def check_model(
    factory: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    input_shape: tuple[int, ...],
    n_outputs: int,
    sample: Tensor,
    task: str,
) -> None:
    """Build the user's model once and run it on ``sample`` (2 real samples), before any trial.

    The global RNG is left as it was.

    Raises:
        UserCodeError: the factory raises, returns something other than an ``nn.Module``, or
            the model's forward raises or gives outputs of a shape the loss cannot take:
            classification needs ``(2, n_outputs)``; regression ``(2, n_outputs)`` or any
            ``(2, ...)`` holding ``n_outputs`` values per sample (``(2,)`` too when
            ``n_outputs == 1``), as the engine's losses accept.

    Example:
        >>> check_model(make_cnn, {"channels": 8}, input_shape=(1, 8, 8), n_outputs=10,
        ...             sample=torch.rand(2, 1, 8, 8), task="classification")
    """
    name = describe_callable(factory)
    input_shape = tuple(int(d) for d in input_shape)
    short = getattr(factory, "__name__", "factory")
    call = f"{short}(input_shape={input_shape}, n_outputs={n_outputs}, **{dict(kwargs)!r})"
    with torch.random.fork_rng(devices=[]):
        try:
            model = factory(input_shape=input_shape, n_outputs=n_outputs, **dict(kwargs))
        except Exception as error:
            raise UserCodeError(
                f"model factory {name} raised {error_summary(error)} when called as {call}; a model "
                "factory takes input_shape= (one sample's shape) and n_outputs= as keywords, "
                "plus the model kwargs."
            ) from error
        if not isinstance(model, nn.Module):
            raise UserCodeError(
                f"model factory {name} returned a {type(model).__module__}."
                f"{type(model).__qualname__}, not a torch.nn.Module; return the model itself "
                "(e.g. nn.Sequential(...))."
            )
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                outputs = model(sample)
        except Exception as error:
            raise UserCodeError(
                f"model factory {name}: the model's forward raised {error_summary(error)} on a "
                f"batch of shape {tuple(sample.shape)}; make its layers fit "
                f"input_shape={input_shape} (one sample's shape, without the batch dimension)."
            ) from error
        finally:
            model.train(was_training)
    if not isinstance(outputs, Tensor):
        raise UserCodeError(
            f"model factory {name}: the model's forward returned a {type(outputs).__name__}, not "
            f"a tensor; return the outputs as one tensor of shape (batch, {n_outputs})."
        )
    expected = _expected_shapes(task, len(sample), n_outputs)
    actual = tuple(outputs.shape)
    if not _shape_ok(task, actual, len(sample), n_outputs):
        raise UserCodeError(
            f"model factory {name}: the model's output on a batch of {len(sample)} samples has "
            f"shape {actual}, but {task} with n_outputs={n_outputs} needs {expected}; the last "
            "layer must have n_outputs units (e.g. nn.Linear(..., n_outputs)), one row per sample."
        )


# --------------------------------------------------------------------------- model outputs


def _shape_ok(task: str, shape: tuple[int, ...], batch: int, n_outputs: int) -> bool:
    if not shape or shape[0] != batch:
        return False
    if task == "classification":
        return shape == (batch, n_outputs)
    # the regression losses flatten each sample's outputs and match them to its targets
    return math.prod(shape[1:]) == n_outputs if len(shape) > 1 else n_outputs == 1


def _expected_shapes(task: str, batch: int, n_outputs: int) -> str:
    if task == "classification":
        return f"{(batch, n_outputs)}"
    if n_outputs == 1:
        return f"{(batch, 1)} or {(batch,)}"
    return f"{(batch, n_outputs)}"


# --------------------------------------------------------------------------- data


def _stack_dataset(
    reference: str, dataset: torch.utils.data.Dataset, max_bytes: int | None
) -> tuple[Tensor, Any]:
    """Iterate a map-style Dataset once into an X tensor and a list (or array) of targets."""
    try:
        n_samples = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(
            f"{reference}: the data factory returned a {type(dataset).__name__} without a "
            "length (an IterableDataset); return a map-style Dataset (with __len__ and "
            "__getitem__) or (X, y) arrays."
        ) from None
    if n_samples < 2:
        raise DataError(
            f"{reference}: the Dataset holds {n_samples} sample(s); at least 2 are needed."
        )
    x0, y0 = _pair(reference, dataset, 0)
    # stacked straight into float32, what X becomes; bool and complex stay, to be refused later
    dtype = x0.dtype if x0.dtype == torch.bool or x0.is_complex() else torch.float32
    sample_bytes = x0.numel() * dtype.itemsize + _nbytes(y0)
    needed = n_samples * sample_bytes
    limit = default_max_bytes() if max_bytes is None else max_bytes
    source = "half this machine's memory" if max_bytes is None else "max_bytes"
    if limit is not None and needed > limit:
        raise DataError(
            f"{reference}: the Dataset holds {n_samples} samples of shape {tuple(x0.shape)} "
            f"({sample_bytes} bytes each): {_size(needed)} in memory, above the limit of "
            f"{_size(limit)} ({source}); return fewer or smaller samples (subsample or "
            "downscale them in the factory)."
        )
    X = torch.empty((n_samples, *x0.shape), dtype=dtype)
    X[0] = x0
    targets = [y0]
    for index in range(1, n_samples):
        x, y = _pair(reference, dataset, index)
        if x.shape != x0.shape:
            raise DataError(
                f"{reference}: Dataset sample {index} has x of shape {tuple(x.shape)}, but "
                f"sample 0 has {tuple(x0.shape)}; every sample must have one shape (pad, crop "
                "or resize them in the Dataset)."
            )
        X[index] = x
        targets.append(y)
    return X, targets


def _pair(reference: str, dataset: torch.utils.data.Dataset, index: int) -> tuple[Tensor, Any]:
    try:
        item = dataset[index]
    except Exception as error:
        raise DataError(
            f"{reference}: reading Dataset sample {index} raised {error_summary(error)}; fix the "
            "Dataset's __getitem__."
        ) from error
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise DataError(
            f"{reference}: Dataset sample {index} is a {type(item).__name__}, not an (x, y) "
            "pair; __getitem__ must return (x, y)."
        )
    x, y = item
    try:
        x_tensor = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as error:
        raise DataError(
            f"{reference}: Dataset sample {index} has an x of type {type(x).__name__} that is "
            f"not numeric ({error_summary(error)}); return x as an array or tensor (e.g. apply "
            "torchvision's ToTensor())."
        ) from error
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy() if y.dim() else y.item()
    return x_tensor.detach().cpu(), y


def _array(reference: str, which: str, value: Any) -> np.ndarray:
    """``value`` (array, tensor, list) as a numpy array; ragged lists are refused."""
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.numpy()
    if isinstance(value, list) and value and all(isinstance(v, Tensor) for v in value):
        return np.stack([_array(reference, which, v) for v in value])
    try:
        return np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise DataError(
            f"{reference}: {which} cannot be made an array ({error_summary(error)}); every sample "
            f"must have the same shape. Return {which} as a numpy array or tensor."
        ) from error


def _check_lengths(reference: str, X: np.ndarray, y: np.ndarray) -> int:
    if X.ndim == 0 or y.ndim == 0:
        raise DataError(
            f"{reference}: X has shape {X.shape} and y {y.shape}; both need a first dimension "
            "of samples, X (n_samples, *sample_shape) and y (n_samples,)."
        )
    if len(X) != len(y):
        raise DataError(
            f"{reference}: X has {len(X)} samples but y has {len(y)}; X and y must have the "
            "same length (one target per sample)."
        )
    if len(X) < 2:
        raise DataError(
            f"{reference}: {len(X)} sample(s); at least 2 are needed to split into folds."
        )
    return len(X)


def _features(reference: str, X: np.ndarray, n_samples: int) -> np.ndarray:
    """Numeric, finite float32 ``X`` of shape ``(n_samples, *sample_shape)``."""
    if X.dtype == np.bool_:
        raise DataError(
            f"{reference}: X is boolean (dtype bool); features must be numbers. Convert it "
            "with X.astype(np.float32) if 0/1 is what you mean."
        )
    if X.dtype.kind not in "iuf":
        raise DataError(
            f"{reference}: X has dtype {X.dtype} (kind {X.dtype.kind!r}), not numeric; "
            "features must be integers or floats. Encode text or categories as numbers."
        )
    if X.ndim < 2:
        raise DataError(
            f"{reference}: X has shape {X.shape}, one number per sample; X must be "
            "(n_samples, *sample_shape), e.g. X.reshape(-1, 1) for a single feature."
        )
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=np.float32)
    _check_finite(reference, "X", X, n_samples, "features")
    return X


def _check_finite(reference: str, which: str, values: np.ndarray, n: int, role: str) -> None:
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        n_nan = int(np.isnan(values).sum())
        first = int(np.argmax(bad.reshape(n, -1).any(axis=1)))
        raise DataError(
            f"{reference}: {which} holds {count} non-finite value(s) ({n_nan} NaN, "
            f"{count - n_nan} infinite or beyond float32), the first in sample {first}; "
            f"{role} must be finite. Fill in, clip or drop those samples."
        )


def _encode(reference: str, y: np.ndarray, task: str) -> tuple[np.ndarray, str, tuple | None]:
    """``(y, resolved task, class labels)`` by the CSV loader's rules."""
    numeric = y.dtype.kind in "biuf"
    if y.dtype == object:
        try:
            y = y.astype(np.float64)
            numeric = True
        except (TypeError, ValueError):
            y = y.astype(str)  # as in a CSV file: any text makes every label text
    elif y.dtype.kind not in "biufUS":
        raise DataError(
            f"{reference}: y has dtype {y.dtype}; targets must be numbers or text labels."
        )
    n = len(y)
    if not numeric:
        if task == "regression":
            raise DataError(
                f"{reference}: y holds text labels (e.g. {str(y.reshape(-1)[0])!r}), but "
                "task='regression' needs a numeric target. Use task='classification' (or "
                "'auto') for labels."
            )
        task = "classification"
    else:
        if y.dtype.kind == "f":
            with np.errstate(over="ignore"):
                _check_finite(reference, "y", y.astype(np.float32), n, "targets")
        values = y.astype(np.float64) if y.dtype.kind in "bf" else y
        integral = y.dtype.kind != "f" or bool(np.all(np.mod(values, 1) == 0))
        if task == "auto":
            few = len(np.unique(values)) <= MAX_AUTO_CLASSES
            task = "classification" if integral and few else "regression"
        if task == "regression":
            return np.ascontiguousarray(y, dtype=np.float32), task, None
        if not integral:
            first = int(np.argmax(np.mod(values, 1).reshape(n, -1).any(axis=1)))
            raise DataError(
                f"{reference}: y[{first}] = {y.reshape(n, -1)[first].tolist()} is not an "
                "integer, but a numeric classification target must hold integer class labels. "
                "Use task='regression' for a continuous target."
            )
        y = y.astype(np.int64) if y.dtype.kind == "f" else y
    if y.ndim > 1:
        raise DataError(
            f"{reference}: y has shape {y.shape}, but a classification target must be "
            f"(n_samples,), one label per sample; return y.reshape(-1) for one label per "
            "sample, or use task='regression' for several values per sample."
        )
    return _encode_labels(reference, "y", y.tolist())


def _nbytes(value: Any) -> int:
    return int(np.asarray(value).nbytes) if not isinstance(value, str) else len(value)


def _size(n_bytes: int) -> str:
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{n_bytes / 2**20:.1f} MiB"
