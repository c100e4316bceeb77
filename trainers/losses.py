"""Losses and validation metrics by name, for models of any output shape.

Both work on stacked tensors: ``(n_models, batch, ...)`` outputs and targets. A loss gives one value
per sample, ``(n_models, batch)``, so the engine can mask and average it per model. A metric gives
one value per model from its validation predictions, and knows whether higher is better.

Names map to small classes (:data:`LOSSES`, :data:`METRICS`); a user's own function is accepted too:
a loss ``fn(outputs, targets) -> (batch,)`` written for one model (it is vmapped over the stack), a
metric ``fn(outputs, targets) -> float`` on one model's real validation rows, given with its
direction.

Example:
    >>> loss = resolve_loss("cross_entropy")
    >>> loss.stacked(torch.zeros(2, 4, 3), torch.zeros(2, 4, dtype=torch.long)).shape
    torch.Size([2, 4])
    >>> resolve_metric("mae").higher_is_better
    False
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score
from torch import Tensor
from torch.nn import functional

__all__ = [
    "LOSSES",
    "METRICS",
    "Loss",
    "Metric",
    "default_metric_name",
    "resolve_loss",
    "resolve_metric",
]


def _per_sample_columns(outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Outputs and float targets as ``(n_models, batch, values)``, checked to pair up one to one."""
    flat_outputs = outputs.flatten(2) if outputs.dim() > 2 else outputs.unsqueeze(-1)
    flat_targets = targets.reshape(*flat_outputs.shape[:2], -1).to(flat_outputs.dtype)
    if flat_targets.shape != flat_outputs.shape:
        raise ValueError(
            f"each sample's outputs and targets must hold as many values, but got outputs of "
            f"shape {tuple(outputs.shape[2:])} and targets of shape {tuple(targets.shape[2:])} "
            "per sample; make the model's n_outputs match the targets."
        )
    return flat_outputs, flat_targets


class Loss:
    """A per-sample loss on stacked outputs; subclasses set ``name`` and ``default_metric``."""

    name = "loss"
    default_metric: str | None = None  # the metric a run reports when none is asked for

    def stacked(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Loss of each sample of each model, ``(n_models, batch)``."""
        raise NotImplementedError

    def mean_and_grad(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Each model's mean loss over its batch, ``(n_models,)``, and that loss's gradient
        with respect to ``outputs`` (of each row's own mean: rows are independent)."""
        leaf = outputs.detach().requires_grad_()
        with torch.enable_grad():
            row_loss = self.stacked(leaf, targets).mean(dim=1)
            (grad,) = torch.autograd.grad(row_loss.sum(), leaf)
        return row_loss.detach(), grad


class MSELoss(Loss):
    """Squared error, averaged over a sample's output values."""

    name, default_metric = "mse", "r2"

    def stacked(self, outputs: Tensor, targets: Tensor) -> Tensor:
        flat_outputs, flat_targets = _per_sample_columns(outputs, targets)
        diff = flat_outputs - flat_targets
        return (diff * diff).mean(dim=-1)

    def mean_and_grad(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        flat_outputs, flat_targets = _per_sample_columns(outputs, targets)
        diff = flat_outputs - flat_targets
        count = diff.shape[1] * diff.shape[2]
        row_loss = (diff * diff).sum(dim=(1, 2)) / count
        return row_loss, (diff * (2 / count)).view(outputs.shape)


class HuberLoss(Loss):
    """Huber loss (``torch.nn.HuberLoss``), averaged over a sample's output values."""

    name, default_metric = "huber", "r2"

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = delta

    def stacked(self, outputs: Tensor, targets: Tensor) -> Tensor:
        flat_outputs, flat_targets = _per_sample_columns(outputs, targets)
        losses = functional.huber_loss(
            flat_outputs, flat_targets, reduction="none", delta=self.delta
        )
        return losses.mean(dim=-1)


class CrossEntropyLoss(Loss):
    """Cross-entropy of class logits ``(n_models, batch, n_classes, ...)`` against class indices
    ``(n_models, batch, ...)``; extra dimensions (a sequence's positions) are averaged."""

    name, default_metric = "cross_entropy", "accuracy"

    def stacked(self, outputs: Tensor, targets: Tensor) -> Tensor:
        losses = functional.cross_entropy(
            outputs.flatten(0, 1), targets.flatten(0, 1).long(), reduction="none"
        )
        return losses.reshape(*outputs.shape[:2], -1).mean(dim=-1)

    def mean_and_grad(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if outputs.dim() != 3:  # extra dimensions: autograd
            return super().mean_and_grad(outputs, targets)
        batch = outputs.shape[1]
        log_probs = torch.log_softmax(outputs, dim=-1)
        index = targets.long().unsqueeze(-1)
        row_loss = log_probs.gather(-1, index).sum(dim=(1, 2)) / -batch
        grad = log_probs.exp_()
        grad.scatter_add_(-1, index, grad.new_full(index.shape, -1.0))
        return row_loss, grad.div_(batch)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy of logits against 0/1 targets of the outputs' shape."""

    name, default_metric = "bce_with_logits", "accuracy"

    def stacked(self, outputs: Tensor, targets: Tensor) -> Tensor:
        flat_outputs, flat_targets = _per_sample_columns(outputs, targets)
        losses = functional.binary_cross_entropy_with_logits(
            flat_outputs, flat_targets, reduction="none"
        )
        return losses.mean(dim=-1)


class CallableLoss(Loss):
    """A user's per-sample loss for one model, ``fn(outputs, targets) -> (batch,)``, vmapped."""

    default_metric = None

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def stacked(self, outputs: Tensor, targets: Tensor) -> Tensor:
        losses = torch.vmap(self.fn, randomness="different")(outputs, targets)
        if losses.shape != outputs.shape[:2]:
            raise ValueError(
                f"loss {self.name!r} must return one loss per sample, shape (batch,), but got "
                f"shape {tuple(losses.shape[1:])} for a batch of {outputs.shape[1]}; use "
                "reduction='none' and average any extra dimensions."
            )
        return losses


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MSELoss, HuberLoss, CrossEntropyLoss, BCEWithLogitsLoss)
}


def resolve_loss(loss: str | Loss | Callable[[Tensor, Tensor], Tensor]) -> Loss:
    """A :class:`Loss` from a name in :data:`LOSSES`, a :class:`Loss`, or a per-sample callable."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not one of {sorted(LOSSES)}, nor a callable.")
        return LOSSES[loss]()
    if callable(loss):
        return CallableLoss(loss)
    raise TypeError(f"loss must be a name, a Loss or a callable, but got {loss!r}.")


def default_metric_name(loss: Loss) -> str:
    """The metric reported when none is given: R² for regression losses, else accuracy."""
    if loss.default_metric is None:
        raise ValueError(
            f"loss {loss.name!r} is a custom callable, so the metric cannot be guessed; pass "
            f"metric= one of {sorted(METRICS)} or a callable with higher_is_better."
        )
    return loss.default_metric


class Metric:
    """A validation metric; ``stacked`` gives one value per model, ``(n_models,)``.

    ``mask`` is ``(n_models, n_val)``: 1 for real validation rows, 0 for padding.
    """

    name = "metric"
    higher_is_better = True

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError


class R2(Metric):
    """Coefficient of determination, averaged over output values (scikit-learn's default)."""

    name, higher_is_better = "r2", True

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        flat_outputs, flat_targets = _per_sample_columns(outputs, targets)
        weight = mask.unsqueeze(-1)
        count = weight.sum(dim=1, keepdim=True)
        mean = (flat_targets * weight).sum(dim=1, keepdim=True) / count
        total = (((flat_targets - mean) ** 2) * weight).sum(dim=1)
        error = (((flat_outputs - flat_targets) ** 2) * weight).sum(dim=1)
        return (1 - error / total.clamp_min(torch.finfo(total.dtype).tiny)).mean(dim=-1)


class MAE(Metric):
    """Mean absolute error over real rows and output values."""

    name, higher_is_better = "mae", False

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        flat_outputs, flat_targets = _per_sample_columns(outputs, targets)
        error = ((flat_outputs - flat_targets).abs().mean(dim=-1) * mask).sum(dim=1)
        return error / mask.sum(dim=1)


def _predicted_classes(outputs: Tensor) -> Tensor:
    """Class indices from logits ``(..., n_classes)``; one logit (or none) means binary, at 0."""
    if outputs.dim() == 2 or outputs.shape[-1] == 1:
        return (outputs.reshape(outputs.shape[:2]) > 0).long()
    return outputs.argmax(dim=-1)


class Accuracy(Metric):
    """Share of real rows whose predicted class is the target."""

    name, higher_is_better = "accuracy", True

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        correct = (_predicted_classes(outputs) == targets.reshape(mask.shape).long()).float()
        return (correct * mask).sum(dim=1) / mask.sum(dim=1)


class F1Macro(Metric):
    """F1 averaged over the classes that occur among targets or predictions (as scikit-learn)."""

    name, higher_is_better = "f1_macro", True

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        n_classes = max(2, outputs.shape[-1]) if outputs.dim() > 2 else 2
        predicted = functional.one_hot(_predicted_classes(outputs), n_classes)
        actual = functional.one_hot(targets.reshape(mask.shape).long(), n_classes)
        weight = mask.unsqueeze(-1)
        true_positive = (predicted * actual * weight).sum(dim=1)
        seen = ((predicted + actual) * weight).sum(dim=1)  # predicted + actual counts per class
        f1 = 2 * true_positive / seen.clamp_min(1)
        present = (seen > 0).float()
        return (f1 * present).sum(dim=1) / present.sum(dim=1)


class RocAuc(Metric):
    """ROC AUC on the host with scikit-learn: binary, or one-vs-rest macro for more classes.

    NaN for a model whose validation rows hold a single class (the AUC is undefined there).
    """

    name, higher_is_better = "roc_auc", True

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        binary = outputs.dim() == 2 or outputs.shape[-1] <= 2
        if outputs.dim() == 2 or outputs.shape[-1] == 1:
            scores = torch.sigmoid(outputs.reshape(mask.shape))
        else:
            scores = torch.softmax(outputs.float(), dim=-1)
            scores = scores[..., 1] if binary else scores
        scores_np, targets_np = scores.cpu().numpy(), targets.reshape(mask.shape).cpu().numpy()
        counts = mask.sum(dim=1).long().tolist()
        values = []
        for row, count in enumerate(counts):
            y_true, y_score = targets_np[row, :count], scores_np[row, :count]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)  # NaN says it already
                values.append(_roc_auc(y_true, y_score, binary, outputs.shape[-1]))
        return torch.tensor(values, dtype=torch.float32, device=outputs.device)


def _roc_auc(y_true: np.ndarray, y_score: np.ndarray, binary: bool, n_classes: int) -> float:
    try:
        if binary:
            return float(roc_auc_score(y_true, y_score))
        labels = np.arange(n_classes)
        return float(roc_auc_score(y_true, y_score, multi_class="ovr", labels=labels))
    except ValueError:  # a single class among the targets (older scikit-learn raises)
        return math.nan


class CallableMetric(Metric):
    """A user's metric for one model, ``fn(outputs, targets) -> float``, called on the host with
    each model's real validation rows (CPU tensors)."""

    def __init__(
        self, fn: Callable[[Tensor, Tensor], float], *, higher_is_better: bool, name: str
    ) -> None:
        self.fn, self.higher_is_better, self.name = fn, higher_is_better, name

    def stacked(self, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        outputs_cpu, targets_cpu = outputs.cpu(), targets.cpu()
        counts = mask.sum(dim=1).long().tolist()
        values = [
            float(self.fn(outputs_cpu[row, :count], targets_cpu[row, :count]))
            for row, count in enumerate(counts)
        ]
        return torch.tensor(values, dtype=torch.float32, device=outputs.device)


METRICS: dict[str, type[Metric]] = {cls.name: cls for cls in (R2, Accuracy, F1Macro, RocAuc, MAE)}


def resolve_metric(
    metric: str | Metric | Callable[[Tensor, Tensor], float],
    *,
    higher_is_better: bool | None = None,
) -> Metric:
    """A :class:`Metric` from a name in :data:`METRICS`, a :class:`Metric`, or a callable.

    A callable needs ``higher_is_better``, so that a study knows which way to optimise it.
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} is not one of {sorted(METRICS)}, nor a callable.")
        if higher_is_better is not None and higher_is_better != METRICS[metric].higher_is_better:
            raise ValueError(
                f"metric {metric!r} has higher_is_better={METRICS[metric].higher_is_better}, "
                f"but got higher_is_better={higher_is_better}; leave it unset for a named metric."
            )
        return METRICS[metric]()
    if callable(metric):
        if higher_is_better is None:
            raise ValueError(
                f"metric={metric!r} is a callable, so its direction is unknown; pass "
                "higher_is_better=True (a score) or False (an error)."
            )
        name = getattr(metric, "__name__", type(metric).__name__)
        return CallableMetric(metric, higher_is_better=higher_is_better, name=name)
    raise TypeError(f"metric must be a name, a Metric or a callable, but got {metric!r}.")
