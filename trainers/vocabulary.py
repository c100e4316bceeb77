"""The names batchsweep understands: optimizers, LR schedules and activations.

Every list of these names reads this module: the trainers, the search-space schema and loader,
the LR-scaling rules and the exported best config. It imports the standard library only, so the
torch-free parts (``search_spaces``, ``sweep.best_config``) can use it without loading torch.

Adding an optimizer touches two places: its :class:`OptimizerKind` entry below, and its functional
update in :func:`trainers.stacked_optim.update_rows`. Nothing else.

Example:
    >>> OPTIMIZERS["adamw"].torch_class_name, OPTIMIZERS["adamw"].default_weight_decay
    ('AdamW', 0.01)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LrScalingRule = Literal["linear", "sqrt"]


@dataclass(frozen=True)
class OptimizerKind:
    """One optimizer: its batchsweep name and what torch and the LR-scaling rules need to know."""

    name: str  # batchsweep's name, as written in a search space
    torch_class_name: str  # the torch.optim class it reproduces, e.g. "AdamW"
    auto_lr_scaling: LrScalingRule  # what lr_scaling rule "auto" resolves to
    default_momentum: float | None = None  # None: the optimizer takes no momentum
    default_weight_decay: float = 0.0

    @property
    def takes_momentum(self) -> bool:
        return self.default_momentum is not None

    def torch_kwargs(
        self, *, weight_decay: float | None = None, momentum: float | None = None
    ) -> dict[str, float]:
        """The ``torch.optim`` keyword arguments besides ``lr``, defaults filled in (None: the
        default). Momentum is passed only to optimizers that take it."""
        kwargs = {
            "weight_decay": self.default_weight_decay if weight_decay is None else weight_decay
        }
        if self.default_momentum is not None:
            kwargs["momentum"] = self.default_momentum if momentum is None else momentum
        return kwargs


_OPTIMIZER_KINDS = (
    # Linear scaling for SGD (Goyal et al. 2017, "Accurate, Large Minibatch SGD").
    OptimizerKind("sgd", "SGD", "linear"),
    OptimizerKind("momentum", "SGD", "linear", default_momentum=0.9),
    # Square-root scaling for adaptive methods (Malladi et al. 2022, "On the SDEs and Scaling
    # Rules for Adaptive Gradient Algorithms").
    OptimizerKind("adam", "Adam", "sqrt"),
    # torch's AdamW default; explicit so the exported config carries it too.
    OptimizerKind("adamw", "AdamW", "sqrt", default_weight_decay=1e-2),
    OptimizerKind("rmsprop", "RMSprop", "sqrt", default_momentum=0.0),
)

OPTIMIZERS: dict[str, OptimizerKind] = {kind.name: kind for kind in _OPTIMIZER_KINDS}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZERS)
MOMENTUM_OPTIMIZERS: tuple[str, ...] = tuple(k.name for k in _OPTIMIZER_KINDS if k.takes_momentum)

SCHEDULES: tuple[str, ...] = ("none", "cosine", "step")  # LR factor per epoch
# Losses and validation metrics by name (trainers.losses implements them); a search space may
# also name a user's function instead, as "file.py:function".
LOSS_NAMES: tuple[str, ...] = ("mse", "cross_entropy", "huber", "bce_with_logits")
METRIC_NAMES: tuple[str, ...] = ("r2", "accuracy", "f1_macro", "roc_auc", "mae")
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "gelu", "silu")

__all__ = [
    "ACTIVATIONS",
    "LOSS_NAMES",
    "METRIC_NAMES",
    "MOMENTUM_OPTIMIZERS",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "SCHEDULES",
    "LrScalingRule",
    "OptimizerKind",
]
