"""bf16 mixed precision: matmuls in bfloat16, loss, gradient, weights and optimizer in float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers import (
    MLPConfig,
    OptimizerConfig,
    StackedMLP,
    TrainConfig,
    load_dataset,
    make_folds,
    prepare_folds,
    train_stack,
)
from trainers.manual_backward import loss_and_grad

CPU = torch.device("cpu")


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])  # gelu: the autograd path
@pytest.mark.parametrize("classification", [False, True], ids=["mse", "cross-entropy"])
def test_bf16_gradient_is_the_float32_gradient_to_bf16_precision(activation, classification):
    generator = torch.Generator().manual_seed(0)
    n_outputs = 3 if classification else 1
    model = StackedMLP(6, n_outputs, MLPConfig((32, 16), activation=activation))
    flat = model.init_flat(4, seed=1, device=CPU)
    inputs = torch.randn(4, 64, 6, generator=generator)
    if classification:
        targets = torch.randint(0, 3, (4, 64), generator=generator)
    else:
        targets = torch.randn(4, 64, generator=generator)
    weight_scale = torch.full((4, 64), 1 / 64)
    exact = loss_and_grad(model, flat, inputs, targets, weight_scale, classification=classification)
    low = loss_and_grad(
        model,
        flat,
        inputs,
        targets,
        weight_scale,
        classification=classification,
        compute_dtype=torch.bfloat16,
    )
    assert low[0].dtype == low[1].dtype == torch.float32  # what the optimizer sees stays fp32
    assert not torch.equal(low[1], exact[1])  # the matmuls really ran in bfloat16
    torch.testing.assert_close(low[0], exact[0], rtol=2e-2, atol=1e-3)
    # bfloat16 keeps 8 bits of mantissa: the gradient agrees to about 1% of its size.
    error = (low[1] - exact[1]).norm(dim=1) / exact[1].norm(dim=1)
    assert torch.all(error < 3e-2), error


def test_bf16_training_reaches_the_float32_loss() -> None:
    dataset = load_dataset("synthetic", n_samples=400, n_features=8, seed=0)
    data = prepare_folds(dataset, make_folds(dataset, n_folds=3, seed=0), device=CPU)

    def config(precision: str) -> TrainConfig:
        return TrainConfig(
            batch_size=32,
            epochs=15,
            optimizer=OptimizerConfig("adam", 0.01),
            model=MLPConfig((32,)),
            precision=precision,
        )

    (fp32,) = train_stack(data, [config("fp32")])
    (bf16,) = train_stack(data, [config("bf16")])
    first, last = fp32.result.val_loss[0].mean(), fp32.result.val_loss[-1].mean()
    assert last < 0.5 * first  # it learned something worth comparing
    assert not np.array_equal(bf16.result.val_loss, fp32.result.val_loss)
    assert bf16.result.final_params.dtype == torch.float32
    np.testing.assert_allclose(bf16.result.val_loss[-1], fp32.result.val_loss[-1], rtol=0.05)
