"""The hand-written backward pass gives autograd's loss and gradient."""

from __future__ import annotations

import pytest
import torch

from trainers.manual_backward import _autograd, loss_and_grad
from trainers.stacked_mlp import MLPConfig, StackedMLP


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("classification", [False, True], ids=["mse", "cross-entropy"])
@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)], ids=["linear", "one-hidden", "two-hidden"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_manual_gradient_equals_autograd(activation, classification, hidden, dropout) -> None:
    generator = torch.Generator().manual_seed(0)
    n_outputs = 3 if classification else 1
    model = StackedMLP(4, n_outputs, MLPConfig(hidden, activation, dropout))
    flat = model.init_flat(6, seed=1, device=torch.device("cpu"))
    inputs = torch.randn(6, 9, 4, generator=generator)
    if classification:
        targets = torch.randint(0, 3, (6, 9), generator=generator)
    else:
        targets = torch.randn(6, 9, generator=generator)
    counts = torch.tensor([9, 9, 5, 1, 0, 9]).unsqueeze(1)  # a ragged batch, and an empty one
    mask = (torch.arange(9) < counts).float()
    weight_scale = mask / counts.clamp_min(1)
    manual = loss_and_grad(
        model,
        flat,
        inputs,
        targets,
        weight_scale,
        classification=classification,
        dropout_generator=torch.Generator().manual_seed(7) if dropout else None,
    )
    reference = _autograd(
        model,
        flat,
        inputs,
        targets,
        weight_scale,
        classification,
        torch.Generator().manual_seed(7) if dropout else None,
        None,
        None,
    )
    torch.testing.assert_close(manual[0], reference[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(manual[1], reference[1], rtol=1e-5, atol=1e-6)
    assert torch.all(manual[1][4] == 0)  # a model with no samples gets no gradient
