"""The module engine gives each fold of any nn.Module the curves it would get if trained alone.

The reference trains each fold's model by itself with ``torch.optim``, from the same initial
weights (:func:`build_module`) and over the same per-epoch permutations. 47 images in 3 folds
train on 31/31/32 rows, so batch 8 ends each epoch with a step of 7/7/8 samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold
from torch import nn
from torch.nn import functional

from tests.trainers.conftest import MIXED_OPTIMIZERS
from trainers.data import load_dataset
from trainers.engine import train_stack
from trainers.fold_data import epoch_orders, prepare_folds
from trainers.folds import make_folds
from trainers.module_engine import (
    ModuleStack,
    build_module,
    module_folds_from,
    prepare_module_folds,
    train_module_folds,
    train_module_stack,
)
from trainers.module_engine._stacked import step_groups
from trainers.stacked_mlp import MLPConfig, StackedMLP, build_mlp
from trainers.stacked_optim import OptimizerConfig, StackedOptimizer, masked_step
from trainers.train_config import TrainConfig, TrainingDiverged

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def _torch_optim_loaded():
    """The first torch.optim optimizer of a process imports torch._dynamo (about a second):
    paid here, once, so that test durations show the tests' own cost."""
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(47, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 47)
    folds = list(KFold(3, shuffle=True, random_state=0).split(X))
    return prepare_module_folds(X, y, folds, device=CPU)


def small_cnn(input_shape, n_outputs, *, batch_norm=False, dropout=0.0):
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, bias=not batch_norm),  # BatchNorm makes a bias redundant
        nn.BatchNorm2d(4) if batch_norm else nn.Identity(),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(4 * (input_shape[1] - 2) * (input_shape[2] - 2), n_outputs),
    )


class SignBranch(nn.Module):
    """Python control flow on the data: vmap cannot batch it."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.linear = nn.Linear(int(np.prod(input_shape)), n_outputs)

    def forward(self, x):
        x = x.flatten(1)
        if x.sum() > 0:
            return self.linear(x)
        return self.linear(-x)


def _train_alone(data, factory, config, *, model_kwargs=None):
    """Each fold trained on its own: its module, torch.optim, plain Python batching."""
    modules = [
        build_module(
            factory,
            data.sample_shape,
            data.n_outputs,
            seed=config.seed,
            fold=k,
            model_kwargs=model_kwargs,
        )
        for k in range(data.n_folds)
    ]
    optimizers = [
        config.optimizer.torch_class()(m.parameters(), **config.optimizer.torch_kwargs())
        for m in modules
    ]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, config.lr_scale) for o in optimizers]
    generator = torch.Generator().manual_seed(config.seed)
    train_curves, val_curves = [], []
    for _ in range(config.epochs):
        order = epoch_orders(generator, data.train_sizes, device=CPU)
        epoch_train, epoch_val = [], []
        for k, (module, optimizer) in enumerate(zip(modules, optimizers)):
            size = data.train_sizes[k]
            rows = data.train_rows[k, order[k, :size]]
            batch_size = size if config.batch_size is None else config.batch_size
            module.train()
            losses = []
            for start in range(0, size, batch_size):
                batch = rows[start : start + batch_size]
                loss = functional.cross_entropy(module(data.inputs[batch]), data.targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            epoch_train.append(np.mean(losses))
            module.eval()
            with torch.no_grad():
                n_val = data.val_sizes[k]
                outputs = module(data.val_inputs[k, :n_val])
                epoch_val.append(
                    functional.cross_entropy(outputs, data.val_targets[k, :n_val]).item()
                )
        for scheduler in schedulers:
            scheduler.step()
        train_curves.append(epoch_train)
        val_curves.append(epoch_val)
    return np.array(train_curves), np.array(val_curves), modules


def _config(optimizer, batch_size=8, epochs=3, **changes):
    return TrainConfig(batch_size=batch_size, epochs=epochs, optimizer=optimizer, seed=4, **changes)


def _assert_matches_alone(data, factory, config, result, model_kwargs=None):
    train, val, modules = _train_alone(data, factory, config, model_kwargs=model_kwargs)
    np.testing.assert_allclose(result.train_loss, train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.val_loss, val, rtol=1e-5, atol=1e-5)
    stack = ModuleStack(modules[0], CPU)
    alone_params = torch.stack([stack.flat_row(module) for module in modules])
    np.testing.assert_allclose(result.final_params, alone_params, rtol=1e-4, atol=1e-5)
    return modules


@pytest.mark.parametrize("use_program", [True, False], ids=["program", "vmap"])
@pytest.mark.parametrize("batch_size", [8, None], ids=["batch8-ragged", "full"])
def test_stacked_cnn_of_mixed_optimizers_matches_each_fold_trained_alone(
    images, batch_size, use_program
):
    configs = [_config(optimizer, batch_size) for optimizer in MIXED_OPTIMIZERS]
    outcomes = train_module_stack(
        images, small_cnn, configs, loss="cross_entropy", use_program=use_program
    )
    assert {outcome.engine for outcome in outcomes} == {"stacked"}
    path = "stacked program" if use_program else "vmap ran"
    assert all(path in outcome.engine_reason for outcome in outcomes)
    for config, outcome in zip(configs, outcomes):
        _assert_matches_alone(images, small_cnn, config, outcome.result)


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_lr_schedules_match_lambda_lr(images, schedule):
    config = _config(OptimizerConfig("adam", 0.02), schedule=schedule, step_size=1, gamma=0.5)
    result = train_module_folds(images, small_cnn, config, loss="cross_entropy")
    _assert_matches_alone(images, small_cnn, config, result)


def frozen_first_layer(input_shape, n_outputs):
    model = small_cnn(input_shape, n_outputs)
    model[0].requires_grad_(False)
    return model


def test_frozen_parameters_stay_out_of_the_flat_tensor_and_unchanged(images):
    config = _config(OptimizerConfig("adam", 0.01, weight_decay=0.1))
    result = train_module_folds(images, frozen_first_layer, config, loss="cross_entropy")
    assert result.engine == "stacked" and "0.weight" in result.final_state
    _assert_matches_alone(images, frozen_first_layer, config, result)
    initial = build_module(frozen_first_layer, (1, 8, 8), 3, seed=config.seed, fold=1)
    np.testing.assert_array_equal(result.final_state["0.weight"][1], initial[0].weight.detach())


def test_a_run_leaves_the_global_rng_where_it_was(images):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    config = _config(OptimizerConfig("adam", 0.01), epochs=1)
    train_module_folds(
        images, small_cnn, config, loss="cross_entropy", model_kwargs={"dropout": 0.5}
    )
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_dropout_draws_differ_per_row_and_repeat_per_seed(images):
    configs = [_config(OptimizerConfig("adam", 0.01))] * 2
    kwargs = {"loss": "cross_entropy", "model_kwargs": {"dropout": 0.5}}
    first, second = train_module_stack(images, small_cnn, configs, **kwargs)
    assert first.engine == "stacked"
    # Same weights and batches: only the dropout masks tell the two trials apart.
    assert not np.allclose(first.result.train_loss, second.result.train_loss)
    again = train_module_stack(images, small_cnn, configs, **kwargs)
    np.testing.assert_array_equal(again[0].result.train_loss, first.result.train_loss)
    without = train_module_stack(images, small_cnn, configs, loss="cross_entropy")
    np.testing.assert_array_equal(without[0].result.train_loss, without[1].result.train_loss)


@pytest.mark.parametrize("use_program", [True, False], ids=["program", "vmap"])
def test_a_stack_of_one_with_dropout_draws_the_masks_of_the_module_alone(use_program):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    one_fold = prepare_module_folds(X, y, [(np.arange(20), np.arange(20, 30))], device=CPU)
    config = _config(OptimizerConfig("adam", 0.01))
    kwargs = {"dropout": 0.5}
    (outcome,) = train_module_stack(
        one_fold,
        layer_norm_mlp,
        [config],
        loss="cross_entropy",
        model_kwargs=kwargs,
        use_program=use_program,
    )
    assert ("stacked program" in outcome.engine_reason) == use_program
    torch.manual_seed(config.seed)  # the engine seeds the global RNG, which dropout draws from
    _assert_matches_alone(one_fold, layer_norm_mlp, config, outcome.result, model_kwargs=kwargs)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_batch_norm_stacks_per_model_running_stats_matching_alone(images, name):
    config = _config(OptimizerConfig(name, 0.02))
    kwargs = {"batch_norm": True}
    result = train_module_folds(
        images, small_cnn, config, loss="cross_entropy", model_kwargs=kwargs
    )
    assert result.engine == "stacked" and "BatchNorm" in result.engine_reason
    modules = _assert_matches_alone(images, small_cnn, config, result, model_kwargs=kwargs)
    for key in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        expected = torch.stack([module.state_dict()[key] for module in modules])
        np.testing.assert_allclose(result.final_state[key], expected, rtol=1e-5, atol=1e-6)


def test_data_dependent_control_flow_falls_back_to_sequential(images):
    configs = [_config(OptimizerConfig("adam", 0.01)), _config(OptimizerConfig("sgd", 0.05))]
    outcomes = train_module_stack(images, SignBranch, configs, loss="cross_entropy")
    for config, outcome in zip(configs, outcomes):
        assert outcome.engine == "sequential" and outcome.result.engine == "sequential"
        assert "data-dependent control flow" in outcome.engine_reason
        _assert_matches_alone(images, SignBranch, config, outcome.result)
    with pytest.raises(ValueError, match="engine='stacked' was asked for, but torch.func.vmap"):
        train_module_stack(images, SignBranch, configs, loss="cross_entropy", engine="stacked")


class TinyLSTM(nn.Module):
    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.rnn = nn.LSTM(input_shape[-1], 4, batch_first=True)
        self.head = nn.Linear(4, n_outputs)

    def forward(self, x):
        outputs, _ = self.rnn(x)
        return self.head(outputs[:, -1])


def test_lstm_on_sequences_falls_back_naming_the_missing_batching_rule():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 5, 2)), rng.normal(size=30)
    data = prepare_module_folds(X, y, list(KFold(3).split(X)), device=CPU)
    result = train_module_folds(data, TinyLSTM, _config(OptimizerConfig("adam", 0.01), epochs=2))
    assert result.engine == "sequential" and "lstm" in result.engine_reason
    assert result.metric_name == "r2" and np.all(np.isfinite(result.val_loss))


class WithHistogram(nn.Module):
    """An op vmap has no batching rule for (histc): it runs, looping over the models."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.linear = nn.Linear(int(np.prod(input_shape)), n_outputs)

    def forward(self, x):
        return self.linear(x.flatten(1)) + 0 * torch.histc(x, bins=4).sum()


def test_an_op_without_batching_rule_stays_stacked_and_is_named(images):
    config = _config(OptimizerConfig("sgd", 0.05), epochs=1)
    result = train_module_folds(images, WithHistogram, config, loss="cross_entropy")
    assert result.engine == "stacked" and "loops over the models for aten::histc" in (
        result.engine_reason
    )
    _assert_matches_alone(images, WithHistogram, config, result)


def test_diverging_trial_is_reported_while_the_others_finish(images):
    configs = [_config(OptimizerConfig("sgd", 1e6)), _config(OptimizerConfig("adam", 0.01))]
    seen = []
    exploding, healthy = train_module_stack(
        images,
        small_cnn,
        configs,
        loss="cross_entropy",
        on_epoch=lambda index, report: seen.append(index),
    )
    assert isinstance(exploding.diverged, TrainingDiverged) and exploding.result is None
    assert exploding.engine == "stacked" and 0 not in seen
    assert np.all(np.isfinite(healthy.result.train_loss))
    _assert_matches_alone(images, small_cnn, configs[1], healthy.result)


def test_masked_step_freezes_rows_whose_loss_went_non_finite():
    flat = torch.ones(3, 4)
    optimizers = [
        StackedOptimizer(flat[:2], [OptimizerConfig("adam", 0.1)] * 2),
        StackedOptimizer(flat[2:], [OptimizerConfig("momentum", 0.1, weight_decay=0.1)]),
    ]
    grad = torch.full((3, 4), 0.5)
    grad[1] = float("nan")
    loss = torch.tensor([1.0, float("nan"), float("inf")])
    alive = torch.isfinite(loss).unsqueeze(1)
    masked_step(optimizers, grad, alive)
    masked_step(optimizers, grad, alive)
    assert torch.all(flat[0] < 1)  # updated
    np.testing.assert_array_equal(flat[1:], torch.ones(2, 4))  # frozen, and never NaN


def test_step_groups_split_a_ragged_step_by_real_sample_count():
    assert step_groups((31, 31, 32), 8, 16) == [(8, None)]
    assert step_groups((31, 31, 32), 8, 24) == [(7, (0, 1)), (8, (2,))]
    assert step_groups((30, 35), 8, 32) == [(3, (1,))]


def test_on_epoch_false_stops_that_trial_only(images):
    configs = [_config(OptimizerConfig("adam", 0.01)), _config(OptimizerConfig("sgd", 0.05))]
    outcomes = train_module_stack(
        images,
        small_cnn,
        configs,
        loss="cross_entropy",
        on_epoch=lambda index, report: not (index == 0 and report.epoch == 2),
    )
    assert outcomes[0].stopped_at_epoch == 2 and outcomes[0].result is None
    assert outcomes[1].result.val_loss.shape == (3, 3)
    _assert_matches_alone(images, small_cnn, configs[1], outcomes[1].result)


@pytest.mark.parametrize("fixture", ["data", "iris"], ids=["regression", "classification"])
def test_mlp_as_a_module_matches_the_mlp_engine(fixture, request):
    fold_data = request.getfixturevalue(fixture)
    model = MLPConfig((8,))
    mlp_configs = [
        TrainConfig(batch_size=8, epochs=3, optimizer=optimizer, model=model, seed=2)
        for optimizer in MIXED_OPTIMIZERS
    ]
    module_configs = [
        TrainConfig(batch_size=8, epochs=3, optimizer=optimizer, seed=2)
        for optimizer in MIXED_OPTIMIZERS
    ]
    stacked = StackedMLP(fold_data.n_features, fold_data.n_outputs, model)
    initial = stacked.init_flat(fold_data.n_folds, seed=2, device=CPU)
    states = [stacked.to_module(row).state_dict() for row in initial]

    def factory(input_shape, n_outputs, config):
        return build_mlp(input_shape[0], n_outputs, config)

    expected = train_stack(fold_data, mlp_configs)
    outcomes = train_module_stack(
        module_folds_from(fold_data),
        factory,
        module_configs,
        model_kwargs={"config": model},
        loss="mse" if fold_data.task == "regression" else "cross_entropy",
        initial_states=states,
    )
    for mine, theirs in zip(outcomes, expected):
        assert mine.engine == "stacked"
        assert mine.result.metric_name == theirs.result.metric_name
        for field in ("train_loss", "val_loss", "val_metric"):
            np.testing.assert_allclose(
                getattr(mine.result, field), getattr(theirs.result, field), rtol=1e-5, atol=1e-6
            )


@pytest.fixture(scope="module")
def iris():
    dataset = load_dataset("iris")
    return prepare_folds(dataset, make_folds(dataset, n_folds=3, seed=0), device=CPU)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": MLPConfig((4,))}, "TrainConfig.model"),
        ({"precision": "bf16"}, "fp32 without capture"),
    ],
)
def test_settings_the_engine_would_ignore_are_rejected(images, changes, message):
    config = _config(OptimizerConfig("adam", 0.01), **changes)
    with pytest.raises(ValueError, match=message):
        train_module_stack(images, small_cnn, [config], loss="cross_entropy")


def test_a_stack_needs_one_batch_size(images):
    configs = [_config(OptimizerConfig("adam", 0.01)), _config(OptimizerConfig("adam", 0.01), 16)]
    with pytest.raises(ValueError, match="a stack needs one batch size"):
        train_module_stack(images, small_cnn, configs, loss="cross_entropy")


def layer_norm_mlp(input_shape, n_outputs, dropout=0.0):
    """An MLP of the kind users write: LayerNorm, GELU and dropout."""
    width = int(np.prod(input_shape))
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(width, 16),
        nn.LayerNorm(16),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(16, n_outputs),
    )


def test_layer_norm_gelu_mlp_matches_each_fold_trained_alone(images):
    configs = [_config(optimizer) for optimizer in MIXED_OPTIMIZERS]
    outcomes = train_module_stack(images, layer_norm_mlp, configs, loss="cross_entropy")
    assert {outcome.engine for outcome in outcomes} == {"stacked"}
    for config, outcome in zip(configs, outcomes):
        _assert_matches_alone(images, layer_norm_mlp, config, outcome.result)


class TinyGRU(nn.Module):
    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.rnn = nn.GRU(input_shape[-1], 4, batch_first=True)
        self.head = nn.Linear(4, n_outputs)

    def forward(self, x):
        outputs, _ = self.rnn(x)
        return self.head(outputs[:, -1])


def test_a_recurrent_model_trains_stacked_or_falls_back_and_matches_training_alone():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(36, 5, 2)).astype(np.float32), rng.integers(0, 2, 36)
    data = prepare_module_folds(
        X, y, list(KFold(3, shuffle=True, random_state=0).split(X)), device=CPU
    )
    config = _config(OptimizerConfig("sgd", 0.05), epochs=2)
    result = train_module_folds(data, TinyGRU, config, loss="cross_entropy")
    assert result.engine in ("stacked", "sequential") and result.engine_reason
    _assert_matches_alone(data, TinyGRU, config, result)
