"""What a study's trials train on, and how: the data on the device and the engine that fits it.

The built-in MLP with the task's usual loss and metric trains on its hand-written fast engine
(:func:`trainers.engine.train_stack`); anything else (a user's module, another loss or metric,
N-d inputs) trains on the generic engine (:func:`trainers.module_engine.train_module_stack`), the
built-in MLP included when only the loss or metric differs. Callers see one interface.

Example:
    >>> problem = make_problem(dataset, folds, device=torch.device("cpu"))
    >>> outcomes = problem.train([config_a, config_b])  # configs sharing problem.stack_key
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trainers.data import Dataset
from trainers.engine import StackOutcome, resolved_batch_size, stack_key, train_stack
from trainers.fold_data import FoldData, prepare_folds
from trainers.folds import Fold
from trainers.losses import resolve_loss, resolve_metric
from trainers.module_engine import (
    ModuleFoldData,
    build_module,
    module_folds_from,
    prepare_module_folds,
    train_module_stack,
)
from trainers.module_engine import stack_key as module_stack_key
from trainers.module_engine.noise import module_noise_scales
from trainers.noise_scale import NoiseScale, fold_noise_scales
from trainers.stacked_mlp import MLPConfig, build_mlp
from trainers.threads import auto_threads, auto_workers, intra_op_threads, step_macs
from trainers.train_config import EpochReport, TrainConfig

DEFAULT_LOSS = {"regression": "mse", "classification": "cross_entropy"}
DEFAULT_METRIC = {"regression": "r2", "classification": "accuracy"}
Callback = Callable[[int, EpochReport], "bool | None"]


@dataclass(frozen=True)
class ModelChoice:
    """The built-in MLP (``factory`` None, ``mlp`` used), or a user's module factory."""

    factory: Callable[..., torch.nn.Module] | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    mlp: MLPConfig = MLPConfig()


@dataclass
class TrainingProblem:
    task: str  # "regression" or "classification"
    data: FoldData | ModuleFoldData
    fast: bool  # the built-in MLP on its own engine
    metric_name: str
    higher_is_better: bool
    engine_options: dict[str, Any] = field(default_factory=dict)  # factory, loss, metric, ...
    # Intra-op threads for every stack; None chooses per stack (trainers.threads.auto_threads).
    threads: int | None = None
    _sample_macs: int | None = field(default=None, init=False, repr=False)

    @property
    def n_folds(self) -> int:
        return self.data.n_folds

    @property
    def train_sizes(self) -> tuple[int, ...]:
        return self.data.train_sizes

    def resolved_batch_size(self, config: TrainConfig) -> int:
        return resolved_batch_size(config, self.data)

    def stack_key(self, config: TrainConfig) -> tuple:
        """Configs with equal keys train in one stack."""
        return stack_key(config, self.data) if self.fast else module_stack_key(config, self.data)

    def train(
        self,
        configs: Sequence[TrainConfig],
        *,
        on_epoch: Callback | None = None,
        on_epoch_end: Callable[[], Iterable[int]] | None = None,
        max_rows: int | None = None,
    ) -> list[StackOutcome]:
        """One stack's outcomes, in order (:class:`~trainers.module_engine.ModuleOutcome` from
        the generic engine, saying which engine ran and why); torch's intra-op threads set for
        the stack's size (:func:`stack_threads`)."""
        workers = self.stack_workers(configs)
        with intra_op_threads(1 if workers > 1 else self.stack_threads(configs)):
            return self._train(configs, on_epoch, on_epoch_end, max_rows, workers)

    def stack_workers(self, configs: Sequence[TrainConfig]) -> int:
        """Sub-stack threads for the built-in MLP's stack on the CPU, each with one intra-op
        thread (:func:`~trainers.threads.auto_workers`); 1 (no split) when ``threads`` is set,
        on other devices, with dropout (whose draws follow the stack's shape) or a compiled
        step."""
        first = configs[0]
        if (
            self.threads is not None
            or not self.fast
            or self.data.device.type != "cpu"
            or first.model.dropout > 0
            or first.capture == "compile"
        ):
            return 1
        rows = len(configs) * self.n_folds
        macs = rows * self.resolved_batch_size(first) * self.sample_macs(first)
        return auto_workers(macs, len(configs))

    def stack_threads(self, configs: Sequence[TrainConfig]) -> int:
        """``threads`` if set, else one thread per :data:`~trainers.threads.STEP_MACS_PER_THREAD`
        multiply-adds of the stack's step."""
        if self.threads is not None:
            return self.threads
        rows = len(configs) * self.n_folds
        return auto_threads(
            rows * self.resolved_batch_size(configs[0]) * self.sample_macs(configs[0])
        )

    def sample_macs(self, config: TrainConfig) -> int:
        """Forward multiply-adds per sample: exact for the built-in MLP; for a user's module its
        parameter count, exact for linear layers and low for convolutions (whose weights are
        reused across positions), so such a stack keeps one thread longer."""
        if self.fast:
            data = self.data
            return step_macs(1, 1, (data.n_features, *config.model.hidden, data.n_outputs))
        if self._sample_macs is None:
            options, data = self.engine_options, self.data
            module = build_module(
                options["factory"],
                data.sample_shape,
                data.n_outputs,
                seed=config.seed,
                fold=0,
                model_kwargs=options["model_kwargs"],
            )
            self._sample_macs = sum(p.numel() for p in module.parameters() if p.requires_grad)
        return self._sample_macs

    def noise_scales(self, config: TrainConfig, rows: torch.Tensor) -> list[NoiseScale]:
        """B_simple of fold 0's model at each weight row ``(n_rows, n_params)``, in the layout
        of the engine that trains it. Raises
        :class:`~trainers.module_engine.noise.NoiseNotMeasured` when it cannot be measured."""
        if self.fast:
            return fold_noise_scales(self.data, config.model, rows, seed=config.seed)
        options = self.engine_options
        return module_noise_scales(
            self.data,
            options["factory"],
            rows,
            loss=options["loss"],
            model_kwargs=options["model_kwargs"],
            seed=config.seed,
        )

    def _train(
        self,
        configs: Sequence[TrainConfig],
        on_epoch: Callback | None,
        on_epoch_end: Callable[[], Iterable[int]] | None,
        max_rows: int | None,
        workers: int = 1,
    ) -> list[StackOutcome]:
        if self.fast:
            return train_stack(
                self.data,
                configs,
                on_epoch=on_epoch,
                on_epoch_end=on_epoch_end,
                max_rows=max_rows,
                workers=workers,
            )
        # The generic engine builds the model with the factory: the MLP setting is not its input.
        configs = [dataclasses.replace(config, model=MLPConfig()) for config in configs]
        return train_module_stack(
            self.data,
            configs=configs,
            on_epoch=on_epoch,
            on_epoch_end=on_epoch_end,
            **self.engine_options,
        )


def n_outputs_of(dataset: Dataset) -> int:
    """What a model is asked for: one output per class, or per target value of a sample."""
    if dataset.task == "classification":
        return int(dataset.n_classes)
    return int(math.prod(dataset.y.shape[1:]))


def standardizes(dataset: Dataset, standardize: str) -> bool:
    """Whether features (and a regression target) are standardised per fold; raises ValueError
    for 'features' on N-d inputs."""
    table = dataset.X.ndim == 2
    if standardize == "features" and not table:
        raise ValueError(
            f"'features' needs (samples, features) inputs, but one sample has shape "
            f"{tuple(dataset.X.shape[1:])}; use none or auto, and scale inside the model."
        )
    return table and standardize in ("auto", "features")


def uses_fast_engine(
    dataset: Dataset,
    model: ModelChoice,
    loss: str | Callable = "auto",
    metric: str | Callable = "auto",
    standardize: str = "auto",
) -> bool:
    """True for the built-in MLP with the task's usual loss and metric on standardised tables:
    the hand-written engine (with bf16 and step capture); False for the generic engine."""
    task = dataset.task
    return (
        model.factory is None
        and loss in ("auto", DEFAULT_LOSS[task])
        and metric in ("auto", DEFAULT_METRIC[task])
        and standardizes(dataset, standardize)
    )


def check_loss_and_metric(
    dataset: Dataset,
    model: ModelChoice,
    loss: str | Callable = "auto",
    metric: str | Callable = "auto",
) -> None:
    """Run the loss and the metric once on the model's outputs for two samples, so that a loss
    that does not fit the target (mse on class labels, say) stops a sweep before it starts.

    Raises:
        ValueError: naming the loss or metric and what did not fit.
    """
    task = dataset.task
    loss = DEFAULT_LOSS[task] if loss == "auto" else loss
    metric = DEFAULT_METRIC[task] if metric == "auto" else metric
    inputs = torch.as_tensor(dataset.X[:2])
    targets = torch.as_tensor(dataset.y[:2])[None]
    with torch.no_grad(), _rng_kept():
        if model.factory is None:
            module = build_mlp(dataset.n_features, n_outputs_of(dataset), model.mlp)
        else:
            module = model.factory(
                input_shape=dataset.sample_shape, n_outputs=n_outputs_of(dataset), **model.kwargs
            )
        outputs = module.eval()(inputs)[None]
        for kind, check in (
            ("loss", lambda: resolve_loss(loss).stacked(outputs, targets)),
            (
                "metric",
                lambda: resolve_metric(
                    metric, higher_is_better=getattr(metric, "higher_is_better", None)
                ).stacked(outputs, targets, torch.ones(1, 2)),
            ),
        ):
            name = loss if kind == "loss" else metric
            label = getattr(name, "__name__", name)
            try:
                check()
            except Exception as err:  # noqa: BLE001 - any failure is the user's mismatch
                raise ValueError(
                    f"{kind} {label!r} does not fit this {task} task: on the model's outputs "
                    f"of shape {tuple(outputs.shape[1:])} and targets of shape "
                    f"{tuple(targets.shape[1:])} it raised {type(err).__name__}: {err}"
                ) from err


@contextlib.contextmanager
def _rng_kept() -> Iterator[None]:
    """Building a model draws from the global RNG; leave it as it was."""
    state = torch.random.get_rng_state()
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def module_engine_data(
    dataset: Dataset, folds: Sequence[Fold], *, device: torch.device, standardize: str = "auto"
) -> ModuleFoldData:
    """The data on ``device`` for the generic engine: a table standardised per fold on its train
    part when ``standardize`` says so (:func:`standardizes`), any other data as given."""
    if standardizes(dataset, standardize):
        return module_folds_from(prepare_folds(dataset, folds, device=device))
    return prepare_module_folds(dataset.X, dataset.y, folds, device=device)


def module_factory(model: ModelChoice) -> tuple[Callable[..., torch.nn.Module], dict[str, Any]]:
    """The factory the generic engine builds each model with, and its keyword arguments: the
    user's, or one that builds the built-in MLP on the flattened sample."""
    if model.factory is not None:
        return model.factory, dict(model.kwargs)
    mlp = model.mlp

    def builtin(input_shape: tuple[int, ...], n_outputs: int) -> torch.nn.Module:
        return build_mlp(math.prod(input_shape), n_outputs, mlp)

    return builtin, {}


def make_problem(
    dataset: Dataset,
    folds: Sequence[Fold],
    *,
    device: torch.device,
    model: ModelChoice | None = None,
    loss: str | Callable = "auto",
    metric: str | Callable = "auto",
    standardize: str = "auto",
    threads: int | None = None,
) -> TrainingProblem:
    """The data on ``device`` and the engine for ``model``, ``loss`` and ``metric``.

    ``loss``/``metric``: "auto" (the task's usual one), a name from :mod:`trainers.losses`, or a
    callable (a metric callable carries ``higher_is_better``). ``standardize``: "auto" and
    "features" standardise a table's features (and a regression target) per fold on its train
    part; "none", and "auto" for N-d inputs, leave the data as given. ``threads``: torch's
    intra-op threads for every stack; None chooses per stack (:mod:`trainers.threads`).
    """
    model = model or ModelChoice()
    task = dataset.task
    loss = DEFAULT_LOSS[task] if loss == "auto" else loss
    metric = DEFAULT_METRIC[task] if metric == "auto" else metric
    if uses_fast_engine(dataset, model, loss, metric, standardize):
        return TrainingProblem(
            task=task,
            data=prepare_folds(dataset, folds, device=device),
            fast=True,
            metric_name=str(metric),
            higher_is_better=True,
            threads=threads,
        )
    data = module_engine_data(dataset, folds, device=device, standardize=standardize)
    resolved_loss = resolve_loss(loss)
    resolved_metric = resolve_metric(
        metric, higher_is_better=getattr(metric, "higher_is_better", None)
    )
    factory, factory_kwargs = module_factory(model)
    return TrainingProblem(
        task=task,
        data=data,
        fast=False,
        metric_name=resolved_metric.name,
        higher_is_better=resolved_metric.higher_is_better,
        engine_options={
            "factory": factory,
            "model_kwargs": factory_kwargs,
            "loss": resolved_loss,
            "metric": resolved_metric,
        },
        threads=threads,
    )
