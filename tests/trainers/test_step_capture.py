"""The compiled step (``capture="compile"``) trains the same stack as the eager step.

torch.compile fuses and reorders float32 arithmetic, so the two agree to rounding, not bit for
bit. These tests compile for real (a few seconds per shape on the CPU).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from tests.trainers.conftest import CPU, MIXED_OPTIMIZERS
from trainers import (
    MLPConfig,
    OptimizerConfig,
    StackedMLP,
    StackedOptimizer,
    TrainConfig,
    train_stack,
)
from trainers.manual_backward import loss_and_grad
from trainers.step_capture import CompiledStep, compute_dtype


def _configs(capture: str, *, dropout: float = 0.0, precision: str = "fp32") -> list[TrainConfig]:
    return [
        TrainConfig(
            batch_size=8,
            epochs=3,
            optimizer=optimizer,
            model=MLPConfig((8,), dropout=dropout),
            seed=2,
            capture=capture,
            precision=precision,
        )
        for optimizer in MIXED_OPTIMIZERS
    ]


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["plain", "dropout"])
def test_compiled_stack_trains_like_the_eager_stack(data, dropout) -> None:
    eager = train_stack(data, _configs("off", dropout=dropout))
    counters.clear()
    compiled = train_stack(data, _configs("compile", dropout=dropout))
    assert counters["stats"]["unique_graphs"] == 1  # the whole step is one graph...
    assert not counters["graph_break"]  # ...with no break back into Python
    for left, right in zip(eager, compiled):
        np.testing.assert_allclose(right.result.train_loss, left.result.train_loss, rtol=1e-4)
        np.testing.assert_allclose(right.result.val_loss, left.result.val_loss, rtol=1e-4)
        torch.testing.assert_close(
            right.result.final_params, left.result.final_params, rtol=1e-4, atol=1e-5
        )


@pytest.mark.slow
def test_compiled_stack_lets_trials_leave(data) -> None:
    """A trial stopped after epoch 1 leaves the stack; the compiled step of the smaller stack
    still trains the others as the eager step does."""

    def stop_adam(index: int, report) -> bool:  # noqa: ANN001 - EpochReport
        return index != 0

    eager = train_stack(data, _configs("off"), on_epoch=stop_adam)
    compiled = train_stack(data, _configs("compile"), on_epoch=stop_adam)
    assert compiled[0].stopped_at_epoch == 1 and compiled[0].result is None
    for left, right in zip(eager[1:], compiled[1:]):
        np.testing.assert_allclose(right.result.val_loss, left.result.val_loss, rtol=1e-4)


def test_capture_and_precision_are_checked() -> None:
    base = _configs("off")[0]
    with pytest.raises(ValueError, match="capture='graphs' is not one of"):
        dataclasses.replace(base, capture="graphs")
    with pytest.raises(ValueError, match="precision='fp8' is not one of"):
        dataclasses.replace(base, precision="fp8")
    assert compute_dtype("bf16") is torch.bfloat16 and compute_dtype("fp32") is None


@pytest.mark.slow
def test_compiled_bf16_step_trains_like_the_eager_bf16_step(data) -> None:
    eager = train_stack(data, _configs("off", precision="bf16"))
    compiled = train_stack(data, _configs("compile", precision="bf16"))
    for left, right in zip(eager, compiled):
        # Both round the matmuls to bfloat16 (8 bits of mantissa); the compiled step may keep
        # fused intermediates in float32, so they agree to bfloat16's precision only.
        np.testing.assert_allclose(right.result.val_loss, left.result.val_loss, rtol=3e-2)


@pytest.mark.slow
@pytest.mark.parametrize("pure", [True, False], ids=["pure-as-on-cuda", "in-place-as-on-cpu"])
def test_both_compiled_step_forms_equal_one_eager_step(pure) -> None:
    """CUDA runs the pure form (for its graphs) and the CPU the in-place one; both are checked
    here on the CPU against the eager step, a ragged step included (one row sits it out)."""
    model = StackedMLP(4, 1, MLPConfig((8,)))
    generator = torch.Generator().manual_seed(0)
    inputs, targets = (
        torch.randn(6, 5, 4, generator=generator),
        torch.randn(6, 5, generator=generator),
    )
    weight_scale = torch.full((6, 5), 0.2)
    active = torch.tensor([True, True, False, True, True, True]).unsqueeze(1)

    def stack():
        flat = model.init_flat(6, seed=1, device=CPU)
        adam = StackedOptimizer(flat[:3], [OptimizerConfig("adam", 0.01)] * 3)
        rmsprop = StackedOptimizer(flat[3:], [OptimizerConfig("rmsprop", 0.01, momentum=0.5)] * 3)
        return flat, [adam, rmsprop]

    flat, optimizers = stack()
    for _ in range(3):
        _loss, grad = loss_and_grad(
            model, flat, inputs, targets, weight_scale, classification=False
        )
        optimizers[0].step(grad[:3], active=active[:3])
        optimizers[1].step(grad[3:], active=active[3:])
    compiled_flat, compiled_optimizers = stack()
    step = CompiledStep(
        model, compiled_optimizers, classification=False, precision="fp32", device=CPU, pure=pure
    )
    for _ in range(3):
        step(compiled_flat, compiled_optimizers, inputs, targets, weight_scale, active, None)
    # Inductor's fused kernels round differently; three Adam/RMSprop steps (which divide by
    # sqrt(v) + eps) magnify that to a few 1e-6 on some CPUs. A wrong update is off by ~lr.
    torch.testing.assert_close(compiled_flat, flat, rtol=1e-4, atol=1e-5)
    assert torch.equal(compiled_flat[2], stack()[0][2])  # the inactive row never moved
    for eager, compiled in zip(optimizers, compiled_optimizers):
        for name, value in eager.state.items():
            torch.testing.assert_close(compiled.state[name], value, rtol=1e-4, atol=1e-5)
