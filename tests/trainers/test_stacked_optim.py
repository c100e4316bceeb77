"""The functional stacked optimizers equal torch.optim run on each model alone."""

from __future__ import annotations

import pytest
import torch

from trainers.stacked_optim import OPTIMIZER_NAMES, OptimizerConfig, StackedOptimizer

CONFIGS = [
    OptimizerConfig("sgd", 0.05),
    OptimizerConfig("sgd", 0.05, weight_decay=0.01),
    OptimizerConfig("momentum", 0.05),
    OptimizerConfig("momentum", 0.05, momentum=0.5, weight_decay=0.001),
    OptimizerConfig("adam", 0.01),
    OptimizerConfig("adam", 0.01, weight_decay=0.01),
    OptimizerConfig("adamw", 0.01),
    OptimizerConfig("adamw", 0.01, weight_decay=0.1),
    OptimizerConfig("rmsprop", 0.01),
    OptimizerConfig("rmsprop", 0.01, momentum=0.9, weight_decay=0.001),
]


def _reference_rows(initial: torch.Tensor, grads: list[torch.Tensor], configs, active_steps):
    rows = []
    for row, config in enumerate(configs):
        param = torch.nn.Parameter(initial[row].clone())
        optimizer = config.torch_class()([param], **config.torch_kwargs())
        for grad, active in zip(grads, active_steps):
            if active is not None and not active[row]:
                continue
            param.grad = grad[row].clone()
            optimizer.step()
        rows.append(param.detach())
    return torch.stack(rows)


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"{c.name}-wd{c.weight_decay}-m{c.momentum}"
)
def test_stacked_step_equals_torch_optim(config: OptimizerConfig) -> None:
    generator = torch.Generator().manual_seed(0)
    initial = torch.randn(3, 17, generator=generator)
    grads = [torch.randn(3, 17, generator=generator) for _ in range(25)]
    flat = initial.clone()
    optimizer = StackedOptimizer(flat, [config] * 3)
    for grad in grads:
        optimizer.step(grad)
    expected = _reference_rows(initial, grads, [config] * 3, [None] * len(grads))
    torch.testing.assert_close(flat, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_inactive_rows_keep_parameters_and_state(name: str) -> None:
    config = OptimizerConfig(name, 0.01, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    initial = torch.randn(3, 5, generator=generator)
    grads = [torch.randn(3, 5, generator=generator) for _ in range(12)]
    # Row 2 sits out every third step, as a fold with fewer samples would at an epoch's end.
    actives = [torch.tensor([True, True, step % 3 != 0]).unsqueeze(1) for step in range(12)]
    flat = initial.clone()
    optimizer = StackedOptimizer(flat, [config] * 3)
    for grad, active in zip(grads, actives):
        optimizer.step(grad, active=active)
    expected = _reference_rows(initial, grads, [config] * 3, [a.squeeze(1) for a in actives])
    torch.testing.assert_close(flat, expected, rtol=1e-5, atol=1e-6)


def test_rows_can_have_different_learning_rates() -> None:
    configs = [OptimizerConfig("adam", lr) for lr in (1e-3, 1e-2, 1e-1)]
    generator = torch.Generator().manual_seed(2)
    initial = torch.randn(3, 4, generator=generator)
    grads = [torch.randn(3, 4, generator=generator) for _ in range(10)]
    flat = initial.clone()
    optimizer = StackedOptimizer(flat, configs)
    for grad in grads:
        optimizer.step(grad)
    expected = _reference_rows(initial, grads, configs, [None] * len(grads))
    torch.testing.assert_close(flat, expected, rtol=1e-5, atol=1e-6)


def test_lr_scale_multiplies_the_learning_rate() -> None:
    flat = torch.zeros(1, 2)
    StackedOptimizer(flat, [OptimizerConfig("sgd", 0.1)]).step(torch.ones(1, 2), lr_scale=0.5)
    torch.testing.assert_close(flat, torch.full((1, 2), -0.05))


def test_mixed_optimizer_kinds_are_rejected() -> None:
    with pytest.raises(ValueError, match="shares one optimizer kind"):
        StackedOptimizer(
            torch.zeros(2, 3), [OptimizerConfig("sgd", 0.1), OptimizerConfig("adam", 0.1)]
        )


@pytest.mark.parametrize("kwargs", [{"name": "lbfgs", "lr": 0.1}, {"name": "sgd", "lr": 0.0}])
def test_bad_optimizer_config_is_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        OptimizerConfig(**kwargs)


def test_dead_rows_get_zero_gradients_and_live_ones_theirs() -> None:
    from trainers.stacked_optim import _zero_dead_rows

    grad = torch.tensor([[1.0, float("nan")], [float("inf"), 2.0], [3.0, 4.0]])
    alive = torch.tensor([[True], [False], [True]])
    torch.testing.assert_close(
        _zero_dead_rows(grad, alive),
        torch.tensor([[1.0, float("nan")], [0.0, 0.0], [3.0, 4.0]]),
        equal_nan=True,
    )
    every = torch.ones(3, 1, dtype=torch.bool)
    assert _zero_dead_rows(grad, every) is grad  # nothing to mask: no pass over the gradient
