"""A sweep's chosen config trained once more, on all the data: the model a user keeps.

Cross-validation scores a config by k models, each missing a fold. The model to keep is the same
config trained on every row (scikit-learn's ``refit=True``). It trains on the generic engine as a
stack of one, so it sees exactly the updates a trial's fold model saw, only over more rows.

The standardisation the trials trained behind (fitted on every row here) travels with the model
as :class:`FittedModel`: its ``forward`` takes raw samples and returns outputs in the target's
own units. Its state dict holds tensors only, for ``torch.load(path, weights_only=True)``.

torch, numpy and scikit-learn only, like the rest of :mod:`trainers`.

Example:
    >>> fitted = refit_model(dataset, ModelChoice(factory=make_cnn), config, device=device)
    >>> torch.save(fitted.model.state_dict(), "model.pt")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainers.data import Dataset
from trainers.folds import Fold, fit_fold_scaling
from trainers.module_engine import ModuleStack, build_module, train_module_stack
from trainers.problem import (
    DEFAULT_LOSS,
    DEFAULT_METRIC,
    ModelChoice,
    module_engine_data,
    module_factory,
    standardizes,
)
from trainers.stacked_mlp import MLPConfig
from trainers.train_config import TrainConfig

SCALING_BUFFERS = ("input_mean", "input_std", "target_mean", "target_std")


class FittedModel(nn.Module):
    """The user's module behind the standardisation it trained with.

    ``forward(x)`` is ``model((x - input_mean) / input_std) * target_std + target_mean``; the
    buffers are zeros and ones where the data was not standardised (classes, N-d inputs).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_mean: Tensor,
        input_std: Tensor,
        target_mean: Tensor,
        target_std: Tensor,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("input_mean", input_mean.detach().clone().float())
        self.register_buffer("input_std", input_std.detach().clone().float())
        self.register_buffer("target_mean", target_mean.detach().clone().float())
        self.register_buffer("target_std", target_std.detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        if x.is_floating_point():
            x = (x - self.input_mean) / self.input_std
        return self.model(x) * self.target_std + self.target_mean

    @classmethod
    def from_state_dict(cls, model: nn.Module, state: Mapping[str, Tensor]) -> FittedModel:
        """``model`` (a new instance of the trained architecture) loaded from a state dict that
        :meth:`state_dict` wrote; the scaling buffers take their shapes from ``state``.

        Raises:
            ValueError: ``state`` is not a FittedModel's state dict, or does not fit ``model``.
        """
        missing = [name for name in SCALING_BUFFERS if name not in state]
        if missing:
            raise ValueError(
                f"not a refitted model's state dict: it lacks {missing}; write one with "
                "`sweep refit --study NAME`."
            )
        fitted = cls(model, **{name: state[name] for name in SCALING_BUFFERS})
        inner = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        try:
            fitted.model.load_state_dict(inner)
        except RuntimeError as err:
            raise ValueError(
                f"the saved weights do not fit the model the config builds: {err}"
            ) from err
        return fitted


@dataclass(frozen=True)
class RefitResult:
    model: FittedModel  # on the CPU, in eval mode
    train_loss: np.ndarray  # (epochs,) the mean training loss of each epoch
    engine: str  # "stacked" or "sequential", as for the trials
    engine_reason: str


def refit_model(
    dataset: Dataset,
    model: ModelChoice,
    config: TrainConfig,
    *,
    device: torch.device,
    loss: str | Callable = "auto",
    metric: str | Callable = "auto",
    standardize: str = "auto",
    on_epoch: Callable[[int, float], None] | None = None,
) -> RefitResult:
    """Train ``config`` once on every row of ``dataset`` and return the model.

    ``loss``, ``metric`` and ``standardize`` are as in :func:`trainers.problem.make_problem`;
    the metric is only measured (on the training rows), never used to choose.
    ``on_epoch(epoch, train_loss)`` is called after each epoch.

    Raises:
        TrainingDiverged: the loss turned non-finite.
    """
    task = dataset.task
    loss = DEFAULT_LOSS[task] if loss == "auto" else loss
    metric = DEFAULT_METRIC[task] if metric == "auto" else metric
    rows = np.arange(dataset.X.shape[0], dtype=np.int64)
    everything = Fold(train_idx=rows, val_idx=rows)
    data = module_engine_data(dataset, [everything], device=device, standardize=standardize)
    factory, kwargs = module_factory(model)
    # The generic engine builds the model with the factory and trains fp32 steps eagerly: the
    # fast engine's settings (its MLP, bf16, capture) only change speed, not the model.
    config = dataclasses.replace(config, model=MLPConfig(), precision="fp32", capture="off")
    reports: list[float] = []

    def report(_: int, epoch_report: Any) -> None:
        value = float(np.mean(epoch_report.train_loss))
        reports.append(value)
        if on_epoch is not None:
            on_epoch(epoch_report.epoch, value)

    outcome = train_module_stack(
        data,
        factory,
        [config],
        model_kwargs=kwargs,
        loss=loss,
        metric=metric,
        higher_is_better=getattr(metric, "higher_is_better", None),
        on_epoch=report,
    )[0]
    if outcome.diverged is not None:
        raise outcome.diverged
    result = outcome.result
    template = build_module(
        factory, data.sample_shape, data.n_outputs, seed=config.seed, fold=0, model_kwargs=kwargs
    )
    stack = ModuleStack(template, torch.device("cpu"))
    state = {name: value[0].cpu() for name, value in result.final_state.items()}
    trained = stack.to_module(result.final_params[0].cpu(), state).eval()
    return RefitResult(
        model=FittedModel(
            trained, **_scaling(dataset, everything, standardizes(dataset, standardize))
        ).eval(),
        train_loss=np.asarray(reports, dtype=np.float64),
        engine=outcome.engine,
        engine_reason=outcome.engine_reason,
    )


def _scaling(dataset: Dataset, fold: Fold, scaled: bool) -> dict[str, Tensor]:
    """The buffers of :class:`FittedModel`: the statistics the model trained behind."""
    shape = tuple(dataset.X.shape[1:])
    if not scaled:
        return {
            "input_mean": torch.zeros(shape),
            "input_std": torch.ones(shape),
            "target_mean": torch.zeros(()),
            "target_std": torch.ones(()),
        }
    scaling = fit_fold_scaling(dataset, [fold])
    regression = dataset.task == "regression"
    return {
        "input_mean": torch.as_tensor(scaling.x_mean[0]).reshape(shape),
        "input_std": torch.as_tensor(scaling.x_std[0]).reshape(shape),
        "target_mean": torch.as_tensor(scaling.y_mean[0]) if regression else torch.zeros(()),
        "target_std": torch.as_tensor(scaling.y_std[0]) if regression else torch.ones(()),
    }
