"""One vocabulary: every list of optimizer, schedule and activation names reads trainers.vocabulary,
and every part of batchsweep accepts each of its names (and nothing else)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import torch

import search_spaces
from search_spaces import SpaceError, load_space
from sweep.best_config import BestConfig, Provenance
from sweep.lr_scaling import resolve_rule
from trainers import data, stacked_mlp, train_config
from trainers.stacked_mlp import MLPConfig, StackedMLP
from trainers.stacked_optim import OptimizerConfig, StackedOptimizer
from trainers.train_config import TrainConfig
from trainers.vocabulary import (
    ACTIVATIONS,
    MOMENTUM_OPTIMIZERS,
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    SCHEDULES,
    OptimizerKind,
)

KINDS = list(OPTIMIZERS.values())
UNKNOWN = "no-such-name"


def _kind_id(kind: OptimizerKind) -> str:
    return kind.name


def _loaded_modules(code: str) -> list[str]:
    """Top-level packages in sys.modules after running ``code`` in a fresh interpreter."""
    script = f"{code}; import json, sys; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.parametrize(
    "code", ["import trainers.vocabulary", "import search_spaces", "import sweep.best_config"]
)
def test_the_vocabulary_and_its_torch_free_readers_do_not_load_torch(code: str) -> None:
    loaded = _loaded_modules(code)
    assert "torch" not in loaded and "numpy" not in loaded


@pytest.mark.slow
def test_the_package_still_exports_its_names_lazily() -> None:
    loaded = _loaded_modules("from trainers import train_stack, OPTIMIZER_NAMES, StackedOptimizer")
    assert "torch" in loaded
    import trainers

    assert set(trainers.__all__) <= set(dir(trainers))
    for name in trainers.__all__:
        assert getattr(trainers, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        trainers.no_such_name  # noqa: B018


def test_entries_are_keyed_by_their_name_and_consistent() -> None:
    assert OPTIMIZER_NAMES == ("sgd", "momentum", "adam", "adamw", "rmsprop")
    assert all(name == kind.name for name, kind in OPTIMIZERS.items())
    assert MOMENTUM_OPTIMIZERS == ("momentum", "rmsprop")
    assert {kind.auto_lr_scaling for kind in KINDS} <= {"linear", "sqrt"}


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_torch_class_exists_and_accepts_the_default_kwargs(kind: OptimizerKind) -> None:
    torch_class = getattr(torch.optim, kind.torch_class_name)
    kwargs = {"lr": 0.1, "weight_decay": kind.default_weight_decay}
    if kind.takes_momentum:
        kwargs["momentum"] = kind.default_momentum
    optimizer = torch_class([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert optimizer.param_groups[0]["weight_decay"] == kind.default_weight_decay
    # batchsweep's weight decay default is torch's own (AdamW's 1e-2 included)
    torch_default = inspect.signature(torch_class).parameters["weight_decay"].default
    assert kind.default_weight_decay == torch_default


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_optimizer_config_reads_the_entry(kind: OptimizerKind) -> None:
    config = OptimizerConfig(kind.name, 0.1)
    assert config.torch_class() is getattr(torch.optim, kind.torch_class_name)
    assert config.resolved_weight_decay == kind.default_weight_decay
    assert config.resolved_momentum == (kind.default_momentum or 0.0)
    assert ("momentum" in config.torch_kwargs()) == kind.takes_momentum
    # a momentum given to an optimizer without one is ignored, as before
    assert OptimizerConfig(kind.name, 0.1, momentum=0.5).resolved_momentum == (
        0.5 if kind.takes_momentum else 0.0
    )


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_stacked_optimizer_steps_every_name_as_torch_does(kind: OptimizerKind) -> None:
    config = OptimizerConfig(kind.name, 0.01)
    generator = torch.Generator().manual_seed(0)
    initial = torch.randn(2, 5, generator=generator)
    grads = [torch.randn(2, 5, generator=generator) for _ in range(5)]
    flat = initial.clone()
    stacked = StackedOptimizer(flat, [config] * 2)
    param = torch.nn.Parameter(initial[0].clone())
    reference = config.torch_class()([param], **config.torch_kwargs())
    for grad in grads:
        stacked.step(grad)
        param.grad = grad[0].clone()
        reference.step()
    torch.testing.assert_close(flat[0], param.detach(), rtol=1e-5, atol=1e-6)


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(ValueError, match=UNKNOWN):
        OptimizerConfig(UNKNOWN, 0.1)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_gives_the_same_stacked_and_plain_model(name: str) -> None:
    stacked = StackedMLP(4, 1, MLPConfig(hidden=(3,), activation=name))
    flat = stacked.init_flat(1, seed=0, device=torch.device("cpu"))
    inputs = torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(0))
    plain = stacked.to_module(flat[0])  # built from the nn module of the same name
    torch.testing.assert_close(stacked.forward(flat, inputs)[0], plain(inputs[0]))


def test_stacked_mlp_maps_exactly_the_vocabulary() -> None:
    assert tuple(stacked_mlp.ACTIVATIONS) == ACTIVATIONS
    with pytest.raises(ValueError, match=UNKNOWN):
        MLPConfig(activation=UNKNOWN)


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_is_a_train_config(name: str) -> None:
    config = TrainConfig(
        batch_size=8, epochs=4, optimizer=OptimizerConfig("sgd", 0.1), schedule=name, step_size=2
    )
    scales = [config.lr_scale(epoch) for epoch in range(4)]
    assert scales[0] == 1.0
    # every schedule but none lowers the rate by the last epoch
    assert (scales[-1] == 1.0) == (name == "none") and scales == sorted(scales, reverse=True)


def _load(key: str, value: object) -> search_spaces.SweepSpec:
    return load_space("quick", overrides={key: (f"--{key}", value)})


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_the_loader_accepts_every_optimizer(name: str) -> None:
    assert _load("search.optimizer", [name]).search.optimizer == (name,)


@pytest.mark.parametrize("name", MOMENTUM_OPTIMIZERS)
def test_the_loader_accepts_momentum_with_each_momentum_optimizer(name: str) -> None:
    spec = load_space(
        "quick",
        overrides={
            "search.optimizer": ("--optimizer", [name]),
            "search.momentum": ("--momentum", [0.0, 0.9]),
        },
    )
    assert spec.search.momentum is not None


def test_the_loader_refuses_momentum_without_a_momentum_optimizer() -> None:
    others = [name for name in OPTIMIZER_NAMES if name not in MOMENTUM_OPTIMIZERS]
    with pytest.raises(SpaceError, match="search.momentum"):
        load_space(
            "quick",
            overrides={
                "search.optimizer": ("--optimizer", others),
                "search.momentum": ("--momentum", [0.9]),
            },
        )


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_the_loader_accepts_every_activation(name: str) -> None:
    assert _load("model.activation", name).model.activation == name


@pytest.mark.parametrize("name", SCHEDULES)
def test_the_loader_accepts_every_schedule(name: str) -> None:
    assert _load("training.schedule", name).training.schedule == name


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("search.optimizer", [UNKNOWN]),
        ("model.activation", UNKNOWN),
        ("training.schedule", UNKNOWN),
    ],
)
def test_the_loader_refuses_names_outside_the_vocabulary(key: str, value: object) -> None:
    with pytest.raises(SpaceError, match=key):
        _load(key, value)


def test_search_spaces_reexports_the_vocabulary() -> None:
    assert search_spaces.OPTIMIZERS == OPTIMIZER_NAMES
    assert search_spaces.SCHEDULES == SCHEDULES
    assert search_spaces.ACTIVATIONS == ACTIVATIONS


def test_space_settings_outside_the_vocabulary_still_match_the_trainers() -> None:
    # not yet in the vocabulary: both sides keep a copy
    assert search_spaces.PRECISIONS == train_config.PRECISIONS
    assert search_spaces.CAPTURE_MODES == train_config.CAPTURE_MODES
    assert set(search_spaces.NAMED_DATASETS) == set(data.NAMED_DATASETS)


def _without_lr(kwargs: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in kwargs.items() if key != "lr"}


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_best_config_names_the_same_torch_class(kind: OptimizerKind) -> None:
    provenance = Provenance("s", 0, 0.5, 0.1, "r2", 0.4, 0.05, 3, 2, 0, "iris", "abc")
    best = BestConfig(
        batch_size=8,
        lr=0.01,
        optimizer=kind.name,
        optimizer_kwargs=_without_lr(OptimizerConfig(kind.name, 0.01).torch_kwargs()),
        schedule={"name": "none", "epochs": 2},
        model={"hidden": [4], "activation": "relu", "dropout": 0.0},
        provenance=provenance,
    )
    assert best.torch_optimizer == OptimizerConfig(kind.name, 0.01).torch_class().__name__
    assert type(best.make_optimizer(torch.nn.Linear(2, 1).parameters())).__name__ == (
        kind.torch_class_name
    )


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_auto_lr_scaling_reads_the_entry(kind: OptimizerKind) -> None:
    assert resolve_rule("auto", kind.name) == kind.auto_lr_scaling
