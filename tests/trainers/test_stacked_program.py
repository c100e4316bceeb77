"""The stacked program gives every model of a stack its own module's outputs, loss and
gradients, for the layers it compiles, and refuses the rest with a reason."""

import numpy as np
import pytest
import torch
from torch import nn

from trainers.losses import resolve_loss
from trainers.module_engine import ModuleStack, _program, build_module, prepare_module_folds
from trainers.module_engine._program import StackedProgram, check_program, compiled_program
from trainers.module_engine._train import train_module_stack
from trainers.stacked_optim import OptimizerConfig
from trainers.train_config import TrainConfig

CPU = torch.device("cpu")
SAMPLE = (2, 9, 9)


# (name, factory(input_shape, n_outputs)) of models the program runs; 9x9 images of 2 channels.
COMPILED = {
    "conv-relu-pool": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, n_outputs),
    ),
    "pool-overlapping-padded-ceil": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 3, 2, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(3 * 6 * 6, n_outputs),
    ),
    "strided-dilated-conv-no-relu": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, dilation=2, padding=2),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, n_outputs),
    ),
    "conv-then-separate-relu": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.Identity(),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Flatten(),
        nn.Linear(3 * 7 * 7, n_outputs),
    ),
    "two-convs-grouped-second": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 2, padding=1, groups=2),
        nn.Tanh(),
        nn.MaxPool2d(2, stride=1),
        nn.Conv2d(6, 3, 1, bias=False),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, n_outputs),
    ),
    "strided-dilated-second-conv": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.GELU(),
        nn.Conv2d(3, 4, 3, stride=2, dilation=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, n_outputs),
    ),
    "layer-norm-gelu-mlp": lambda input_shape, n_outputs: nn.Sequential(
        nn.Flatten(), nn.Linear(162, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, n_outputs)
    ),
    "layer-norm-without-affine": lambda input_shape, n_outputs: nn.Sequential(
        nn.Flatten(),
        nn.Linear(162, 8),
        nn.LayerNorm(8, elementwise_affine=False),
        nn.Linear(8, n_outputs),
    ),
    "image-layer-norm-and-average-pools": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.LayerNorm([4, 7, 7], bias=False),
        nn.ReLU(),
        nn.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(4, 3, 1),
        nn.AdaptiveAvgPool2d((2, 2)),
        nn.Flatten(),
        nn.Linear(12, n_outputs),
    ),
    "batch-norm-cnn-and-mlp": lambda input_shape, n_outputs: nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3),
        nn.BatchNorm2d(4, affine=False, momentum=0.3),
        nn.Flatten(),
        nn.Linear(4 * 1 * 1, 8),
        nn.BatchNorm1d(8, track_running_stats=False),
        nn.Tanh(),
        nn.Linear(8, n_outputs),
    ),
    "mlp-tanh-gelu-sigmoid": lambda input_shape, n_outputs: nn.Sequential(
        nn.Flatten(),
        nn.Linear(162, 16),
        nn.Tanh(),
        nn.Linear(16, 8),
        nn.GELU(),
        nn.Linear(8, 8, bias=False),
        nn.Sigmoid(),
        nn.Linear(8, n_outputs),
    ),
    "gelu-tanh-approximation": lambda input_shape, n_outputs: nn.Sequential(
        nn.Flatten(), nn.Linear(162, 8), nn.GELU(approximate="tanh"), nn.Linear(8, n_outputs)
    ),
}


def _rows_of(factory, n_folds, n_positions):
    modules = [
        build_module(factory, SAMPLE, 3, seed=p, fold=f)
        for p in range(n_positions)
        for f in range(n_folds)
    ]
    stack = ModuleStack(modules[0], CPU)
    flat, state = stack.stack(modules)
    return stack, flat, modules, state


def _images(n_folds, batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n_folds, batch, *SAMPLE, generator=generator)
    inputs[0, 0] = 0.5  # a constant image: every pooling window ties
    inputs[-1, -1, :, :4] = -1.0  # and a constant region
    targets = torch.randint(0, 3, (n_folds, batch), generator=generator)
    return inputs, targets


@pytest.mark.parametrize("name", list(COMPILED))
def test_each_row_gets_its_own_modules_loss_and_gradient(name):
    n_folds, n_positions = 3, 2
    stack, flat, modules, state = _rows_of(COMPILED[name], n_folds, n_positions)
    program, why_not = StackedProgram.compile(stack.base, SAMPLE)
    assert program is not None, why_not
    inputs, targets = _images(n_folds, 6)
    loss = resolve_loss("cross_entropy")
    views = stack.views(flat)
    outputs = program.forward(views, inputs, state)
    row_loss, grad = program.loss_and_grad(
        views, inputs, targets.repeat(n_positions, 1), loss, state=state
    )
    for row, module in enumerate(modules):
        fold = row % n_folds
        with torch.no_grad():
            evaluated = module.eval()(inputs[fold])
        expected = module.train()(inputs[fold])  # BatchNorm: batch statistics, running update
        expected_loss = nn.functional.cross_entropy(expected, targets[fold])
        params = dict(module.named_parameters())
        expected_grad = torch.autograd.grad(expected_loss, [params[n] for n in stack.names])
        torch.testing.assert_close(outputs[row], evaluated, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(row_loss[row], expected_loss.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            grad[row], torch.cat([g.reshape(-1) for g in expected_grad]), rtol=1e-4, atol=1e-6
        )
        for buffer_name, buffer in module.named_buffers():
            torch.testing.assert_close(state[buffer_name][row], buffer, rtol=1e-5, atol=1e-6)


def test_pooling_routes_a_tied_windows_gradient_to_its_first_maximum_as_max_pool2d_does():
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    model = nn.Sequential(conv, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 1, bias=False))
    stack = ModuleStack(model, CPU)
    flat, _ = stack.stack([model])
    program, _ = StackedProgram.compile(stack.base, (1, 4, 4))
    image = torch.tensor([[3.0, 3.0, 0.0, 1.0], [3.0, 3.0, 1.0, 0.0], [2, 2, 2, 2], [2, 2, 2, 2]])
    # A gradient that only reaches the weight through each window's chosen element's input.
    inputs, targets = image.view(1, 1, 1, 4, 4), torch.zeros(1, 1, 1)
    _, grad = program.loss_and_grad(stack.views(flat), inputs, targets, resolve_loss("mse"))
    expected_loss = nn.functional.mse_loss(model(image.view(1, 1, 4, 4)), targets[0])
    expected = torch.autograd.grad(
        expected_loss, [dict(model.named_parameters())[n] for n in stack.names]
    )
    torch.testing.assert_close(grad[0], torch.cat([g.reshape(-1) for g in expected]))


@pytest.mark.parametrize(
    "module, reason",
    [
        (
            nn.Sequential(
                nn.Conv2d(2, 3, 3),
                nn.BatchNorm2d(3, momentum=None),
                nn.Flatten(),
                nn.Linear(147, 3),
            ),
            "'1' is a BatchNorm2d with momentum=None",
        ),
        (
            nn.Sequential(nn.Flatten(), nn.Linear(162, 8), nn.Softplus(), nn.Linear(8, 3)),
            "'2' (Softplus)",
        ),
        (
            nn.Sequential(
                nn.Conv2d(2, 3, 3),
                nn.ReLU(),
                nn.Conv2d(3, 3, 3, padding="same"),
                nn.Flatten(),
                nn.Linear(147, 3),
            ),
            "'2' is a Conv2d",
        ),
        (
            nn.Sequential(nn.MaxPool2d(3), nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3, 3)),
            "'0' (MaxPool2d)",
        ),
        (
            nn.Sequential(
                nn.Conv2d(2, 3, 3, groups=1, padding="same"), nn.Flatten(), nn.Linear(243, 3)
            ),
            "'0' is a Conv2d",
        ),
        (
            nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(98, 3)),
            "'0' is a Conv2d",
        ),
        (
            nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(2, return_indices=True)),
            "'1' (MaxPool2d)",
        ),
        (nn.Sequential(nn.Flatten(), nn.ReLU()), "no Linear or Conv2d"),
        (nn.Linear(4, 2), "Linear, not an nn.Sequential"),
    ],
)
def test_what_the_program_does_not_run_is_refused_with_the_reason(module, reason):
    program, why_not = StackedProgram.compile(module, SAMPLE)
    assert program is None and reason in why_not


def test_a_frozen_parameter_is_refused():
    module = nn.Sequential(nn.Flatten(), nn.Linear(162, 3))
    module[1].bias.requires_grad_(False)
    assert StackedProgram.compile(module, SAMPLE) == (None, "some of its parameters are frozen")


def test_the_check_catches_a_program_that_disagrees_with_the_module():
    module = COMPILED["conv-relu-pool"](input_shape=SAMPLE, n_outputs=3)
    program, _ = StackedProgram.compile(module, SAMPLE)
    inputs, targets = _images(1, 4)
    loss = resolve_loss("cross_entropy")
    names = [n for n, _ in module.named_parameters()]
    assert check_program(program, module, names, inputs[0], targets[0], loss) is None
    linear = program.layers[-1]
    honest = linear.backward

    def doubled(grad, saved, params, grads):
        result = honest(grad, saved, params, grads)
        grads[linear.weight] = grads[linear.weight] * 2
        return result

    linear.backward = doubled
    problem = check_program(program, module, names, inputs[0], targets[0], loss)
    assert problem == "the stacked program's gradients differ from the module's own"
    integer = torch.zeros(4, *SAMPLE, dtype=torch.int64)
    assert "not floating point" in check_program(program, module, names, integer, targets[0], loss)


def test_the_patch_table_and_per_step_patches_give_the_same_step():
    stack, flat, _, _ = _rows_of(COMPILED["conv-relu-pool"], 2, 2)
    program, _ = StackedProgram.compile(stack.base, SAMPLE)
    samples = torch.randn(10, *SAMPLE)
    table, is_patches = program.prepared(samples)
    assert is_patches and table.shape == (10, 81, 18)
    values, is_patches = program.prepared(samples, max_bytes=table.numel() * 4 - 1)
    assert values is samples and not is_patches
    rows = torch.tensor([[0, 3, 5], [9, 1, 2]])
    targets = torch.randint(0, 3, (4, 3))
    loss = resolve_loss("cross_entropy")
    views = stack.views(flat)
    from_table = program.loss_and_grad(views, table[rows], targets, loss, prepared=True)
    per_step = program.loss_and_grad(views, samples[rows], targets, loss)
    for a, b in zip(from_table, per_step):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_evaluation_in_chunks_equals_one_pass(monkeypatch):
    stack, flat, _, _ = _rows_of(COMPILED["conv-relu-pool"], 2, 3)
    program, _ = StackedProgram.compile(stack.base, SAMPLE)
    inputs = torch.randn(2, 37, *SAMPLE)
    whole = program.forward(stack.views(flat), inputs)
    monkeypatch.setattr(_program, "EVAL_CHUNK_BYTES", 1)  # one sample per chunk
    chunked = program.forward(stack.views(flat), inputs)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)  # matmul blocking differs


def test_the_engine_runs_the_program_and_says_so_and_falls_back_to_vmap_otherwise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, *SAMPLE)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    data = prepare_module_folds(X, y, [(np.arange(15), np.arange(15, 30))] * 2, device=CPU)
    config = TrainConfig(batch_size=8, epochs=1, optimizer=OptimizerConfig("adam", 1e-2))
    (outcome,) = train_module_stack(
        data, COMPILED["conv-relu-pool"], [config], loss="cross_entropy"
    )
    assert outcome.engine == "stacked"
    assert (
        "(Conv2d+ReLU+MaxPool2d, Flatten, Linear) ran as one stacked program"
        in outcome.engine_reason
    )

    def with_leaky_relu(input_shape, n_outputs):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(162, 4), nn.LeakyReLU(), nn.Linear(4, n_outputs)
        )

    (outcome,) = train_module_stack(data, with_leaky_relu, [config], loss="cross_entropy")
    assert outcome.engine == "stacked" and "vmap" in outcome.engine_reason


def test_compiled_program_reports_why_a_module_has_none():
    module = nn.Sequential(nn.Flatten(), nn.Linear(162, 8), nn.LeakyReLU(), nn.Linear(8, 3))
    inputs, targets = _images(1, 2)
    program, reason = compiled_program(
        module,
        [n for n, _ in module.named_parameters()],
        SAMPLE,
        inputs[0],
        targets[0],
        resolve_loss("cross_entropy"),
    )
    assert program is None and "(LeakyReLU) is not one the program runs" in reason


def test_dropout_masks_differ_per_row_and_repeat_per_seed():
    def factory(input_shape, n_outputs):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(162, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, n_outputs)
        )

    module = factory(SAMPLE, 3)
    stack = ModuleStack(module, CPU)
    flat, _ = stack.stack([module, module])  # two rows, the same weights
    program, why_not = StackedProgram.compile(stack.base, SAMPLE)
    assert program is not None and "Dropout" in program.layer_names, why_not
    inputs, targets = _images(1, 8)
    loss, views = resolve_loss("cross_entropy"), stack.views(flat)
    torch.manual_seed(0)
    first = program.loss_and_grad(views, inputs, targets.repeat(2, 1), loss)
    torch.manual_seed(0)
    again = program.loss_and_grad(views, inputs, targets.repeat(2, 1), loss)
    off = program.loss_and_grad(views, inputs, targets.repeat(2, 1), loss, dropout=False)
    assert first[0][0] != first[0][1]  # the same model and batch: only the masks differ
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert off[0][0] == off[0][1]
    evaluated = program.forward(views, inputs)
    torch.testing.assert_close(evaluated[0], module.eval()(inputs[0]).detach())  # no dropout


def test_dropout_on_the_data_itself_is_refused():
    module = nn.Sequential(nn.Dropout(0.2), nn.Flatten(), nn.Linear(162, 3))
    program, why_not = StackedProgram.compile(module, SAMPLE)
    assert program is None and "'0' (Dropout)" in why_not
