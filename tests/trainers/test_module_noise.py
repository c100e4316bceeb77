"""The gradient noise scale of a user's module: the same draws and gradients as a plain autograd
loop over the module, through the stacked program and through vmap; a module it cannot measure
says why."""

import numpy as np
import pytest
import torch
from torch import nn

from trainers.losses import resolve_loss
from trainers.module_engine import ModuleStack, build_module, prepare_module_folds
from trainers.module_engine.noise import NoiseNotMeasured, module_noise_scales
from trainers.noise_scale import noise_scale_from_norms

CPU = torch.device("cpu")


def sequential_cnn(input_shape, n_outputs):
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(3 * 3 * 3, n_outputs),
    )  # fmt: skip


class ResidualMLP(nn.Module):
    """Not an nn.Sequential: it trains, and is measured, through vmap."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.inner = nn.Linear(36, 36)
        self.head = nn.Linear(36, n_outputs)

    def forward(self, x):
        x = x.flatten(1)
        return self.head(x + torch.tanh(self.inner(x)))


def batch_norm_cnn(input_shape, n_outputs):
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, n_outputs)
    )


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    folds = [(np.arange(40), np.arange(40, 60)), (np.arange(20, 60), np.arange(20))]
    return prepare_module_folds(X, y, folds, device=CPU)


def _by_hand(data, factory, rows_params, *, small, big, draws, seed):
    """Each draw's gradient through the plain module and autograd, the draws made as the
    function documents: ``torch.randint`` on a generator seeded ``seed``, small then big."""
    template = build_module(factory, data.sample_shape, data.n_outputs, seed=seed, fold=0)
    stack = ModuleStack(template, CPU)
    size = data.train_sizes[0]
    rows = data.train_rows[0, :size]
    generator = torch.Generator().manual_seed(seed)
    picks = {b: rows[torch.randint(size, (draws, b), generator=generator)] for b in (small, big)}
    scales = []
    for row in rows_params:
        module = stack.to_module(row, {})
        params = dict(module.named_parameters())
        norms = {}
        for batch, chosen in picks.items():
            values = []
            for draw in chosen:
                loss = nn.functional.cross_entropy(module(data.inputs[draw]), data.targets[draw])
                grads = torch.autograd.grad(loss, [params[n] for n in stack.names])
                values.append(float(sum(g.pow(2).sum() for g in grads)))
            norms[batch] = np.array(values)
        scales.append(
            noise_scale_from_norms(norms[small], norms[big], small=small, big=big, seed=seed)
        )
    return scales


@pytest.mark.parametrize("factory", [sequential_cnn, ResidualMLP], ids=["program", "vmap"])
def test_each_rows_noise_scale_is_that_of_its_module_by_autograd(images, factory):
    modules = [build_module(factory, (1, 6, 6), 3, seed=s, fold=0) for s in (0, 7)]
    stack = ModuleStack(modules[0], CPU)
    rows = torch.stack([stack.flat_row(m) for m in modules])
    options = dict(small=2, big=5, draws=6, seed=3)
    measured = module_noise_scales(
        images, factory, rows, loss=resolve_loss("cross_entropy"), **options
    )
    expected = _by_hand(images, factory, rows, **options)
    for got, want in zip(measured, expected):
        assert got.gradient_sq_norm == pytest.approx(want.gradient_sq_norm, rel=1e-4)
        assert got.trace_covariance == pytest.approx(want.trace_covariance, rel=1e-4)
        assert (got.small_batch, got.big_batch, got.draws) == (2, 5, 6)
    assert measured[0].gradient_sq_norm != measured[1].gradient_sq_norm  # rows are their own


def test_a_model_with_running_statistics_is_not_measured_and_says_why(images):
    module = build_module(batch_norm_cnn, (1, 6, 6), 3, seed=0, fold=0)
    row = ModuleStack(module, CPU).flat_row(module).unsqueeze(0)
    with pytest.raises(NoiseNotMeasured, match="buffers"):
        module_noise_scales(images, batch_norm_cnn, row, loss=resolve_loss("cross_entropy"))


def test_a_measurement_that_fails_says_why_and_leaves_the_global_rng_alone(images):
    def picky(outputs, targets):
        if outputs.shape[0] == 2:  # the small batch of the measurement, never one of training's
            raise ValueError("my loss wants more than 2 samples")
        return nn.functional.cross_entropy(outputs, targets, reduction="none")

    module = build_module(sequential_cnn, (1, 6, 6), 3, seed=0, fold=0)
    row = ModuleStack(module, CPU).flat_row(module).unsqueeze(0)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    with pytest.raises(NoiseNotMeasured, match="not measured: ValueError: my loss wants more"):
        module_noise_scales(images, sequential_cnn, row, loss=resolve_loss(picky), small=2, big=5)
    torch.testing.assert_close(torch.rand(3), expected)
