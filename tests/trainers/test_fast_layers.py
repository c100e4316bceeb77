"""The stacked engine's channels-last stand-ins give each model the outputs and gradients of the
module alone: ``Conv2d``, ``MaxPool2d`` and the fused ``Conv2d, ReLU, MaxPool2d`` run, including
exact ties in the pooling windows (all-zero windows after the ReLU, equal values), and layers
they must not stand in for are left alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional

from trainers.losses import resolve_loss
from trainers.module_engine import ModuleStack
from trainers.module_engine._fast_layers import (
    StackedConv2d,
    StackedConvReluPool,
    StackedMaxPool2d,
    stacked_copy,
)

CPU = torch.device("cpu")
N_MODELS, BATCH = 3, 5


def _cnn(pool: nn.MaxPool2d, middle: nn.Module | None = None, size: int = 8) -> nn.Sequential:
    conv = nn.Conv2d(2, 4, kernel_size=3, padding=1)
    features = (
        4
        * functional.max_pool2d(
            torch.zeros(1, 1, size, size),
            pool.kernel_size,
            pool.stride,
            pool.padding,
            pool.dilation,
            pool.ceil_mode,
        ).numel()
    )
    return nn.Sequential(
        conv,
        middle if middle is not None else nn.ReLU(),
        pool,
        nn.Flatten(),
        nn.Linear(features, 3),
    )


def _stack_and_reference(make, inputs: torch.Tensor, *, bias: float | None = None):
    """The stacked loss and gradient of ``N_MODELS`` models from ``make``, and each model's own,
    computed alone with autograd."""
    torch.manual_seed(0)
    modules = [make() for _ in range(N_MODELS)]
    if bias is not None:
        for module in modules:
            with torch.no_grad():
                module[0].bias.fill_(bias)
    stack = ModuleStack(modules[0], CPU)
    flat, state = stack.stack(modules)
    targets = torch.randint(0, 3, (N_MODELS, inputs.shape[1]))
    loss = resolve_loss("cross_entropy")
    stacked_loss, stacked_grad = stack.loss_and_grad(flat, state, inputs, targets, loss)
    with torch.no_grad():
        stacked_out = stack.forward(flat, state, inputs, train=False)
    for m, module in enumerate(modules):
        module.zero_grad()
        out = module(inputs[m])
        own = functional.cross_entropy(out, targets[m])
        own.backward()
        params = dict(module.named_parameters())
        grad = torch.cat([params[name].grad.reshape(-1) for name in stack.names])
        torch.testing.assert_close(stacked_out[m], out.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stacked_loss[m], own.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stacked_grad[m], grad, rtol=1e-5, atol=1e-6)
    return stack


POOLS = {
    "2x2": lambda: nn.MaxPool2d(2),
    "kernel 3 stride 2 padding 1": lambda: nn.MaxPool2d(3, stride=2, padding=1),
    "ceil_mode": lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True),
    "dilation": lambda: nn.MaxPool2d(2, stride=1, dilation=2),
}


@pytest.mark.parametrize("pool", POOLS, ids=list(POOLS))
@pytest.mark.parametrize("size", [8, 7])
def test_fused_conv_relu_pool_matches_the_module(pool, size):
    inputs = torch.randn(N_MODELS, BATCH, 2, size, size)
    stack = _stack_and_reference(lambda: _cnn(POOLS[pool](), size=size), inputs)
    assert stack.swapped == ["Conv2d+ReLU+MaxPool2d"]
    assert isinstance(stack.fast_base[0], StackedConvReluPool)


@pytest.mark.parametrize("bias", [-1.0, 0.0, 0.5])
def test_fused_ties_route_like_max_pool2d(bias):
    """Constant images make every window's values equal (before the ReLU too); a negative bias
    makes every window all zeros after the ReLU."""
    inputs = torch.ones(N_MODELS, BATCH, 2, 8, 8)
    inputs[:, :, :, ::3] = 0.0  # some windows tie, some do not
    _stack_and_reference(lambda: _cnn(nn.MaxPool2d(2)), inputs, bias=bias)


@pytest.mark.parametrize("pool", POOLS, ids=list(POOLS))
def test_separate_conv_and_pool_match_the_module(pool):
    """Tanh between them: the convolution and the pooling are swapped one by one."""
    inputs = torch.randn(N_MODELS, BATCH, 2, 8, 8)
    inputs[:, :2] = 1.0  # tied windows
    stack = _stack_and_reference(lambda: _cnn(POOLS[pool](), nn.Tanh()), inputs)
    assert stack.swapped == ["Conv2d", "MaxPool2d"]
    assert isinstance(stack.fast_base[0], StackedConv2d)
    assert isinstance(stack.fast_base[2], StackedMaxPool2d)


class _MyPool(nn.MaxPool2d):
    """A subclass may do anything in forward: never swapped."""


@pytest.mark.parametrize(
    "module",
    [
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU()),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), _MyPool(2)),
        nn.Sequential(nn.MaxPool2d(2, return_indices=True)),
    ],
    ids=["reflect padding", "pool subclass", "return_indices"],
)
def test_ineligible_layers_are_left_alone(module):
    """(A plain Conv2d beside them is still swapped on its own.)"""
    copied, swapped = stacked_copy(module)
    assert "MaxPool2d" not in swapped and "Conv2d+ReLU+MaxPool2d" not in swapped
    kept = [m for m in module.modules() if type(m) is not nn.Conv2d or m.padding_mode != "zeros"]
    assert [type(m) for m in copied.modules() if type(m) is not StackedConv2d] == [
        type(m) for m in kept
    ]


def test_the_users_module_is_not_changed_and_to_module_gives_plain_layers():
    torch.manual_seed(0)
    module = _cnn(nn.MaxPool2d(2))
    before = [type(m) for m in module.modules()]
    stack = ModuleStack(module, CPU)
    flat, state = stack.stack([module])
    assert [type(m) for m in module.modules()] == before
    assert [type(m) for m in stack.to_module(flat[0], state).modules()] == before
    assert "run channels-last" not in repr(module)


@pytest.mark.parametrize(
    "make", [lambda: _cnn(nn.MaxPool2d(2)), lambda: _cnn(nn.MaxPool2d(2), nn.Tanh())]
)
def test_stand_ins_outside_vmap_behave_as_the_originals(make):
    torch.manual_seed(0)
    module = make()
    fast, _ = stacked_copy(module)
    x = torch.randn(BATCH, 2, 8, 8, requires_grad=True)
    out, fast_out = module(x), fast(x)
    torch.testing.assert_close(fast_out, out)
    grads = torch.autograd.grad(out.sum(), [x, *module.parameters()])
    fast_grads = torch.autograd.grad(fast_out.sum(), [x, *fast.parameters()])
    for got, expected in zip(fast_grads, grads):
        torch.testing.assert_close(got, expected)
