"""The transposed forms of narrow layers give the plain batched matmuls' results."""

from __future__ import annotations

import pytest
import torch

from trainers.stacked_linear import NARROW_OUT, input_grad, linear_forward, weight_grad


@pytest.mark.parametrize("n_out", [1, 3, NARROW_OUT, NARROW_OUT + 1, 40])
@pytest.mark.parametrize("batch", [1, 9])
def test_every_form_equals_the_plain_products(n_out, batch) -> None:
    generator = torch.Generator().manual_seed(n_out)
    flat = torch.randn(4, 7 * n_out + n_out, generator=generator)  # weight rows, then bias
    weight = flat[:, : 7 * n_out].view(4, 7, n_out)  # strided views, as the engine's are
    bias = flat[:, 7 * n_out :].view(4, 1, n_out)
    inputs = torch.randn(4, batch, 7, generator=generator)
    grad = torch.randn(4, batch, n_out, generator=generator)
    out = linear_forward(inputs, weight, bias)
    assert out.shape == (4, batch, n_out)
    torch.testing.assert_close(out, torch.baddbmm(bias, inputs, weight))
    torch.testing.assert_close(
        weight_grad(inputs, grad), torch.bmm(inputs.transpose(1, 2), grad).flatten(1)
    )
    torch.testing.assert_close(input_grad(grad, weight), torch.bmm(grad, weight.transpose(1, 2)))


def test_the_input_gradient_is_a_new_tensor() -> None:
    weight, grad = torch.randn(2, 5, 1), torch.randn(2, 3, 1)
    result = input_grad(grad, weight)
    result.zero_()
    assert grad.abs().sum() > 0 and weight.abs().sum() > 0


def test_the_forward_is_differentiable() -> None:
    weight = torch.randn(3, 5, 2, requires_grad=True)
    bias = torch.randn(3, 1, 2, requires_grad=True)
    inputs = torch.randn(3, 4, 5)
    linear_forward(inputs, weight, bias).sum().backward()
    torch.testing.assert_close(
        weight.grad, inputs.sum(dim=1, keepdim=True).transpose(1, 2).expand(3, 5, 2)
    )
    torch.testing.assert_close(bias.grad, torch.full((3, 1, 2), 4.0))
