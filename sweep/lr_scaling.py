"""Learning rate coupled to batch size: linear scaling for SGD (Goyal et al. 2017, "Accurate,
Large Minibatch SGD") and square-root scaling for the Adam family (Malladi et al. 2022, "On the
SDEs and Scaling Rules for Adaptive Gradient Algorithms"). Plain Python: the exported best config
uses it without torch."""

from __future__ import annotations

import math

from trainers.vocabulary import OPTIMIZERS


def resolve_rule(rule: str, optimizer: str) -> str:
    """``auto`` becomes the optimizer's own rule (:attr:`OptimizerKind.auto_lr_scaling`): linear
    for SGD and momentum, sqrt for the Adam family and RMSprop."""
    if rule != "auto":
        return rule
    kind = OPTIMIZERS.get(optimizer)
    return (
        kind.auto_lr_scaling if kind is not None else "sqrt"
    )  # names outside it always resolved to sqrt


def scaled_lr(
    base_lr: float, *, rule: str, optimizer: str, batch_size: int, reference: int
) -> float:
    """The learning rate for ``batch_size`` when ``base_lr`` is the rate at ``reference``.

    Example:
        >>> scaled_lr(0.1, rule="linear", optimizer="sgd", batch_size=64, reference=32)
        0.2
    """
    resolved = resolve_rule(rule, optimizer)
    if resolved == "linear":
        return base_lr * batch_size / reference
    if resolved == "sqrt":
        return base_lr * math.sqrt(batch_size / reference)
    return base_lr
