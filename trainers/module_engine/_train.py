"""Entry points: train the folds of one or several trials of any ``nn.Module``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from trainers.losses import Loss, Metric, default_metric_name, resolve_loss, resolve_metric
from trainers.module_engine._data import ModuleFoldData
from trainers.module_engine._program import stacked_path
from trainers.module_engine._run import ENGINES, ModuleCVResult, ModuleOutcome, check_configs
from trainers.module_engine._sequential import SequentialRun
from trainers.module_engine._stack import (
    ModelFactory,
    ModuleStack,
    build_module,
    rng_devices,
)
from trainers.module_engine._stacked import StackedRun
from trainers.train_config import EpochReport, TrainConfig

# on_epoch(trial_index, report) -> False stops that trial; True (or None) lets it go on.
StackCallback = Callable[[int, EpochReport], "bool | None"]
ENGINE_CHOICES = ("auto", *ENGINES)
DEFAULT_MAX_EVAL_ROWS = 65536  # (model, sample) rows one validation forward holds at most


def train_module_stack(
    data: ModuleFoldData,
    factory: ModelFactory,
    configs: Sequence[TrainConfig],
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    loss: str | Loss | Callable[[Tensor, Tensor], Tensor] = "mse",
    metric: str | Metric | Callable[[Tensor, Tensor], float] | None = None,
    higher_is_better: bool | None = None,
    on_epoch: StackCallback | None = None,
    on_epoch_end: Callable[[], Iterable[int]] | None = None,
    engine: str = "auto",
    initial_states: Sequence[Mapping[str, Tensor]] | None = None,
    max_eval_rows: int = DEFAULT_MAX_EVAL_ROWS,
    use_program: bool = True,
) -> list[ModuleOutcome]:
    """Train several trials' folds of a user's module as one stack; one outcome per config.

    Each fold's model is ``factory(input_shape=data.sample_shape, n_outputs=data.n_outputs,
    **model_kwargs)``, built under :func:`~trainers.module_engine.fold_seed` (so fold k starts
    from the same weights alone or in any stack), or loaded from ``initial_states[k]``. With
    ``engine="auto"`` an ``nn.Sequential`` of the layers
    :class:`~trainers.module_engine._program.StackedProgram` knows trains as that program
    (checked first against the module on two samples); any other module runs through a vmapped
    forward and backward, tried on two samples first; a module that vmap cannot run either
    (data-dependent control flow, an op without a batching rule) trains one model at a time with
    ``torch.optim`` instead. Every outcome says which engine ran and why.

    The configs must share :func:`~trainers.module_engine.stack_key` (batch size, epochs,
    schedule, seed); each trial keeps its own optimizer. ``on_epoch``/``on_epoch_end`` work as in
    :func:`trainers.engine.train_stack`.

    Args:
        loss: a name in :data:`trainers.losses.LOSSES`, a :class:`~trainers.losses.Loss`, or a
            per-sample callable ``fn(outputs, targets) -> (batch,)`` for one model.
        metric: a name in :data:`trainers.losses.METRICS`, a :class:`~trainers.losses.Metric`,
            or a callable ``fn(outputs, targets) -> float`` with ``higher_is_better``. None: R²
            for regression losses, accuracy for classification losses.
        engine: ``"auto"``, ``"stacked"`` (raise if neither the program nor vmap can) or
            ``"sequential"``.
        max_eval_rows: (model, sample) rows one validation forward of the vmap path holds at
            most.
        use_program: False skips the stacked program, so a stack always runs through vmap (for
            benchmarks and checks of that path).

    Example:
        >>> def factory(input_shape, n_outputs):
        ...     return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_outputs))
        >>> configs = [TrainConfig(32, 10, OptimizerConfig(name, 1e-3)) for name in ("sgd", "adam")]
        >>> outcomes = train_module_stack(data, factory, configs, loss="cross_entropy")
        >>> outcomes[1].result.fold_val_metric, outcomes[1].engine
    """
    configs = list(configs)
    check_configs(configs, data)
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"engine={engine!r} is not one of {ENGINE_CHOICES}.")
    if max_eval_rows < 1:
        raise ValueError(f"max_eval_rows must be >= 1, but got max_eval_rows={max_eval_rows}.")
    resolved_loss = resolve_loss(loss)
    resolved_metric = resolve_metric(
        default_metric_name(resolved_loss) if metric is None else metric,
        higher_is_better=higher_is_better,
    )
    seed = configs[0].seed
    modules = [
        build_module(
            factory, data.sample_shape, data.n_outputs, seed=seed, fold=k, model_kwargs=model_kwargs
        )
        for k in range(data.n_folds)
    ]
    if initial_states is not None:
        if len(initial_states) != data.n_folds:
            raise ValueError(
                f"initial_states needs one state dict per fold, {data.n_folds}, but got "
                f"{len(initial_states)}."
            )
        for module, state in zip(modules, initial_states):
            module.load_state_dict(state)
    stack = ModuleStack(modules[0], data.device)
    options = {"loss": resolved_loss, "metric": resolved_metric, "max_eval_rows": max_eval_rows}
    with _seeded_global_rng(seed, data.device):
        run: StackedRun | SequentialRun
        if engine == "sequential":
            reason = "engine='sequential' was asked for"
            run = SequentialRun(
                data, configs, stack=stack, initial=modules, reason=reason, **options
            )
        else:
            flat, state = stack.stack(modules)
            probe_rows = data.train_rows[0, :2]
            program, probe = stacked_path(
                stack,
                flat,
                state,
                data.inputs[probe_rows],
                data.targets[probe_rows],
                resolved_loss,
                use_program=use_program,
            )
            if probe.stackable:
                run = StackedRun(
                    data,
                    configs,
                    stack=stack,
                    initial=(flat, state),
                    reason=probe.reason,
                    program=program,
                    **options,
                )
            elif engine == "stacked":
                raise ValueError(f"engine='stacked' was asked for, but {probe.reason}.")
            else:
                reason = f"{probe.reason}; each model trains alone with torch.optim"
                run = SequentialRun(
                    data, configs, stack=stack, initial=modules, reason=reason, **options
                )
        return _drive(run, on_epoch, on_epoch_end)


def train_module_folds(
    data: ModuleFoldData,
    factory: ModelFactory,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    **options: Any,
) -> ModuleCVResult:
    """Train one trial's folds; a NaN or infinite loss raises
    :class:`~trainers.train_config.TrainingDiverged`. ``options`` are
    :func:`train_module_stack`'s.

    Example:
        >>> result = train_module_folds(data, factory, TrainConfig(64, 10, OptimizerConfig("adam", 1e-3)))
        >>> result.fold_val_loss.mean(), result.engine
    """
    callback = None if on_epoch is None else (lambda _index, report: on_epoch(report))
    (outcome,) = train_module_stack(data, factory, [config], on_epoch=callback, **options)
    if outcome.diverged is not None:
        raise outcome.diverged
    assert isinstance(outcome.result, ModuleCVResult)
    return outcome.result


def _drive(
    run: StackedRun | SequentialRun,
    on_epoch: StackCallback | None,
    on_epoch_end: Callable[[], Iterable[int]] | None,
) -> list[ModuleOutcome]:
    for epoch in range(run.epochs):
        run.train_epoch(epoch)
        if epoch == 0 and run.epochs > 1:
            run.keep_early_params()
        for index, report in run.read_epoch(epoch):
            if report is None:
                continue
            keep_going = True if on_epoch is None else on_epoch(index, report)
            if keep_going is False:
                run.stop(index, epoch)
        for index in () if on_epoch_end is None else on_epoch_end():
            run.stop(index, epoch)
        run.drop_finished()
        if not run.live:
            break
    flat, state = run.final()
    return run.finish(flat, state, run.peak_memory(run.param_floats()))


@contextlib.contextmanager
def _seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """The global RNG (which vmap's and torch's dropout draw from) seeded for the run, and
    restored after it: runs are reproducible and leave the caller's draws alone."""
    devices = rng_devices(device)
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for index in devices:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
