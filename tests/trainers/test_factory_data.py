"""Tests for trainers.factory_data: a user's data factory into a Dataset, and the model check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from trainers.data import MAX_AUTO_CLASSES, DataError, fingerprint
from trainers.factory_data import check_model, load_factory_dataset
from trainers.user_code import UserCodeError, load_callable

SEARCH_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
HEADER = "import numpy as np\nimport torch\n\n"


def factory(tmp_path: Path, body: str, name: str = "data.py") -> str:
    """A reference to ``load(**kwargs)`` whose body is ``body`` (indented by the caller)."""
    path = tmp_path / name
    path.write_text(HEADER + "def load(**kwargs):\n" + body, encoding="utf-8")
    return f"{path}:load"


def load_error(reference: str, **options) -> str:
    with pytest.raises(DataError) as caught:
        load_factory_dataset(reference, {}, **options)
    message = str(caught.value)
    assert reference in message
    return message


# --------------------------------------------------------------------------- loading


def test_arrays_of_integer_classes(tmp_path):
    reference = factory(
        tmp_path,
        "    X = np.arange(12.0).reshape(6, 2)\n    return X, np.array([5, 7, 5, 7, 9, 9])\n",
    )
    ds = load_factory_dataset(reference, {})
    assert ds.name == reference
    assert ds.task == "classification"
    assert ds.X.dtype == np.float32 and ds.X.shape == (6, 2)
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 0, 1, 2, 2]
    assert ds.class_labels == (5, 7, 9) and ds.n_classes == 3
    assert ds.feature_names == ("x0", "x1")
    assert ds.fingerprint == fingerprint(ds.X, ds.y, "classification")


def test_kwargs_reach_the_factory_and_text_labels_are_classes(tmp_path):
    reference = factory(
        tmp_path,
        "    n = kwargs['n']\n    return torch.zeros(n, 3), ['cat', 'dog'] * (n // 2)\n",
    )
    ds = load_factory_dataset(reference, {"n": 4})
    assert ds.X.shape == (4, 3)
    assert ds.class_labels == ("cat", "dog")
    assert ds.y.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("y", "task", "expected_task"),
    [
        ("np.linspace(0, 1, 30)", "auto", "regression"),
        (
            f"np.arange(30) % {MAX_AUTO_CLASSES + 1} + (np.arange(30) >= 20) * 100",
            "auto",
            "regression",
        ),
        ("np.arange(30) % 3", "regression", "regression"),
        ("(np.arange(30) % 2).astype(float)", "auto", "classification"),
        ("torch.arange(30) % 2", "auto", "classification"),
    ],
)
def test_task_is_inferred_as_for_csv_files(tmp_path, y, task, expected_task):
    reference = factory(tmp_path, f"    return np.ones((30, 2)), {y}\n")
    ds = load_factory_dataset(reference, {}, task=task)
    assert ds.task == expected_task
    assert ds.y.dtype == (np.int64 if expected_task == "classification" else np.float32)


def test_images_keep_their_shape(tmp_path):
    reference = factory(tmp_path, "    return np.random.rand(5, 1, 8, 8), np.arange(5.0)\n")
    ds = load_factory_dataset(reference, {}, task="regression")
    assert ds.X.shape == (5, 1, 8, 8) and ds.X.dtype == np.float32
    assert len(ds.feature_names) == 64


def test_bundled_digits_images():
    reference = f"{SEARCH_SPACES / 'digits_cnn_data.py'}:load_digits_images"
    ds = load_factory_dataset(reference, {})
    digits = load_digits()
    assert ds.X.shape == (1797, 1, 8, 8) and ds.X.dtype == np.float32
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    np.testing.assert_allclose(ds.X.reshape(1797, 64), digits.data / 16, rtol=1e-6)
    assert ds.task == "classification" and ds.n_classes == 10
    np.testing.assert_array_equal(ds.y, digits.target)


def test_torch_dataset_is_stacked_once(tmp_path):
    reference = factory(
        tmp_path,
        "    class Pairs(torch.utils.data.Dataset):\n"
        "        def __len__(self):\n"
        "            return 6\n"
        "        def __getitem__(self, i):\n"
        "            return np.full((2, 3), i, dtype=np.float64), torch.tensor(i % 2)\n"
        "    return Pairs()\n",
    )
    ds = load_factory_dataset(reference, {})
    assert ds.X.shape == (6, 2, 3) and ds.X.dtype == np.float32
    np.testing.assert_array_equal(ds.X[:, 0, 0], np.arange(6))
    assert ds.task == "classification" and ds.y.tolist() == [0, 1, 0, 1, 0, 1]


def test_tensor_dataset_matches_the_arrays(tmp_path):
    pairs = factory(
        tmp_path,
        "    g = torch.Generator().manual_seed(0)\n"
        "    X, y = torch.rand(8, 4, generator=g), torch.rand(8, generator=g)\n"
        "    return torch.utils.data.TensorDataset(X, y) if kwargs['wrap'] else (X, y)\n",
    )
    wrapped = load_factory_dataset(pairs, {"wrap": True})
    plain = load_factory_dataset(pairs, {"wrap": False})
    assert wrapped.task == plain.task == "regression"
    assert wrapped.fingerprint == plain.fingerprint


# --------------------------------------------------------------------------- data errors


def test_unknown_task_is_refused(tmp_path):
    reference = factory(tmp_path, "    return np.ones((3, 1)), np.ones(3)\n")
    message = load_error(reference, task="ranking")
    assert "task='ranking'" in message


def test_reference_that_cannot_load_is_a_data_error(tmp_path):
    message = load_error(f"{tmp_path / 'missing.py'}:load")
    assert "file not found" in message


def test_factory_that_raises(tmp_path):
    reference = factory(tmp_path, "    raise FileNotFoundError('images.npz is missing')\n")
    message = load_error(reference)
    assert "the data factory raised FileNotFoundError: images.npz is missing" in message


def test_factory_given_an_unknown_kwarg(tmp_path):
    path = tmp_path / "strict.py"
    path.write_text("def load(n):\n    return [[0.0]] * n, [0.0] * n\n")
    with pytest.raises(DataError, match="raised TypeError: .*unexpected keyword argument 'm'"):
        load_factory_dataset(f"{path}:load", {"m": 3})


@pytest.mark.parametrize(
    ("returned", "kind"),
    [("{'X': 1, 'y': 2}", "a dict"), ("(1, 2, 3)", "a tuple of length 3"), ("None", "a NoneType")],
)
def test_return_that_is_neither_a_pair_nor_a_dataset(tmp_path, returned, kind):
    message = load_error(factory(tmp_path, f"    return {returned}\n"))
    assert f"the data factory returned {kind}" in message
    assert "(X, y)" in message and "torch.utils.data.Dataset" in message


def test_lengths_differ(tmp_path):
    message = load_error(factory(tmp_path, "    return np.ones((5, 2)), np.ones(4)\n"))
    assert "X has 5 samples but y has 4" in message


def test_fewer_than_two_samples(tmp_path):
    message = load_error(factory(tmp_path, "    return np.ones((1, 2)), np.ones(1)\n"))
    assert "1 sample(s); at least 2 are needed" in message


@pytest.mark.parametrize(
    ("X", "rule"),
    [
        ("np.array([['a', 'b'], ['c', 'd']])", "not numeric"),
        ("np.array([[1, 'b'], [2, 'c']], dtype=object)", "dtype object"),
        ("np.ones((2, 3), dtype=bool)", "X is boolean"),
        ("np.ones(2)", "one number per sample"),
    ],
)
def test_features_must_be_numeric_and_per_sample(tmp_path, X, rule):
    message = load_error(factory(tmp_path, f"    return {X}, np.array([0.5, 1.5])\n"))
    assert rule in message


def test_non_finite_features_are_counted_with_the_first_sample(tmp_path):
    reference = factory(
        tmp_path,
        "    X = np.zeros((6, 1, 2, 2))\n"
        "    X[3, 0, 1, 1] = np.nan\n    X[4, 0, 0, 0] = np.inf\n    X[4, 0, 0, 1] = 1e39\n"
        "    return X, np.arange(6.0)\n",
    )
    message = load_error(reference)
    assert "X holds 3 non-finite value(s) (1 NaN, 2 infinite or beyond float32)" in message
    assert "the first in sample 3" in message


def test_non_finite_regression_target(tmp_path):
    reference = factory(
        tmp_path,
        "    y = np.linspace(0, 1, 5)\n    y[2] = -np.inf\n    return np.ones((5, 1)), y\n",
    )
    message = load_error(reference, task="regression")
    assert "y holds 1 non-finite value(s) (0 NaN, 1 infinite" in message
    assert "first in sample 2" in message


def test_classification_target_must_be_one_dimensional(tmp_path):
    reference = factory(tmp_path, "    return np.ones((4, 2)), np.array([[0], [1], [0], [1]])\n")
    message = load_error(reference)
    assert "y has shape (4, 1)" in message
    assert "classification target must be (n_samples,)" in message
    assert "reshape(-1)" in message


def test_text_target_with_regression_task(tmp_path):
    reference = factory(tmp_path, "    return np.ones((2, 1)), ['a', 'b']\n")
    message = load_error(reference, task="regression")
    assert "text labels" in message and "task='regression' needs a numeric target" in message


def test_fractional_target_with_classification_task(tmp_path):
    reference = factory(tmp_path, "    return np.ones((3, 1)), np.array([0.0, 1.5, 1.0])\n")
    message = load_error(reference, task="classification")
    assert "y[1] = [1.5] is not an integer" in message


def test_dataset_above_max_bytes_says_what_it_needs(tmp_path):
    reference = factory(
        tmp_path,
        "    return torch.utils.data.TensorDataset(torch.zeros(1000, 3, 32, 32), torch.zeros(1000))\n",
    )
    message = load_error(reference, max_bytes=1_000_000)
    assert "holds 1000 samples of shape (3, 32, 32)" in message
    assert "12296 bytes each" in message  # 3*32*32 float32 and the target
    assert "11.7 MiB in memory, above the limit of 1.0 MiB (max_bytes)" in message


def test_iterable_dataset_is_refused(tmp_path):
    reference = factory(
        tmp_path,
        "    class Stream(torch.utils.data.IterableDataset):\n"
        "        def __iter__(self):\n"
        "            yield np.ones(2), 0\n"
        "    return Stream()\n",
    )
    assert "without a length (an IterableDataset)" in load_error(reference)


def test_dataset_samples_of_different_shapes(tmp_path):
    reference = factory(
        tmp_path,
        "    class Ragged(torch.utils.data.Dataset):\n"
        "        def __len__(self):\n"
        "            return 3\n"
        "        def __getitem__(self, i):\n"
        "            return np.ones(2 + (i == 2)), 0.5\n"
        "    return Ragged()\n",
    )
    assert "sample 2 has x of shape (3,), but sample 0 has (2,)" in load_error(reference)


# --------------------------------------------------------------------------- check_model


def make_cnn():
    return load_callable(f"{SEARCH_SPACES / 'digits_cnn_model.py'}:make_cnn")


SAMPLE = torch.linspace(0, 1, 128).reshape(2, 1, 8, 8)


def check(factory_fn, *, n_outputs=10, task="classification", kwargs=None):
    check_model(
        factory_fn,
        kwargs or {},
        input_shape=(1, 8, 8),
        n_outputs=n_outputs,
        sample=SAMPLE,
        task=task,
    )


def test_the_bundled_cnn_passes_and_leaves_the_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    check(make_cnn(), kwargs={"channels": 4})
    assert torch.equal(torch.rand(1), expected)


def test_factory_that_raises_names_the_factory():
    def make_net(input_shape, n_outputs):
        raise RuntimeError("no such layer")

    with pytest.raises(UserCodeError) as caught:
        check(make_net)
    message = str(caught.value)
    assert "model factory test_factory_that_raises_names_the_factory.<locals>.make_net" in message
    assert "raised RuntimeError: no such layer" in message
    assert "make_net(input_shape=(1, 8, 8), n_outputs=10" in message


def test_factory_that_returns_no_module():
    with pytest.raises(UserCodeError, match=r"returned a builtins\.dict, not a torch\.nn\.Module"):
        check(lambda input_shape, n_outputs: {"layers": []})


@pytest.mark.parametrize(
    ("n_units", "task", "n_outputs", "expected"),
    [
        (3, "classification", 10, "needs (2, 10)"),
        (3, "regression", 1, "needs (2, 1) or (2,)"),
    ],
)
def test_output_of_the_wrong_shape(n_units, task, n_outputs, expected):
    def make_net(input_shape, n_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, n_units))

    with pytest.raises(UserCodeError) as caught:
        check(make_net, n_outputs=n_outputs, task=task)
    message = str(caught.value)
    assert f"has shape (2, {n_units})" in message
    assert expected in message
    assert "the last layer must have n_outputs units" in message


@pytest.mark.parametrize("head", [nn.Identity(), nn.Flatten(0)])
def test_regression_accepts_what_the_loss_accepts(head):
    def make_net(input_shape, n_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 1), head)  # (2, 1) or (2,)

    check(make_net, n_outputs=1, task="regression")


def test_forward_that_raises_says_the_input_shape():
    def make_net(input_shape, n_outputs):
        return nn.Linear(64, n_outputs)  # forgot to flatten

    with pytest.raises(UserCodeError, match=r"forward raised RuntimeError: .*\(2, 1, 8, 8\)"):
        check(make_net)
