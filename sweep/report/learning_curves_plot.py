"""The article's loss comparison, drawn from the real trials: one curve per batch size."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from sweep.study.trial_record import record_of, val_loss_curve  # noqa: E402


def best_trial_per_batch_size(trials: list[FrozenTrial]) -> dict[str, FrozenTrial]:
    """For each batch size, its best COMPLETE trial by CV validation loss.

    A batch size whose trials were all pruned is shown by its pruned trial that got furthest
    (then lowest last loss), so the plot still says how that size was doing when it stopped.
    """
    best: dict[str, FrozenTrial] = {}
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or not val_loss_curve(trial):
            continue
        key = str(trial.params["batch_size"])
        if key not in best or _rank(trial) < _rank(best[key]):
            best[key] = trial
    return dict(sorted(best.items(), key=lambda item: _batch_order(item[0])))


def _rank(trial: FrozenTrial) -> tuple[int, int, float]:
    curve = val_loss_curve(trial)
    complete = trial.state == TrialState.COMPLETE
    return (0 if complete else 1, -len(curve), curve[-1])


def learning_curves_figure(trials: list[FrozenTrial]) -> Figure:
    """Training and CV validation loss per epoch for each batch size's best trial."""
    figure, (train_axis, val_axis) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    best = best_trial_per_batch_size(trials)
    for batch_size, trial in best.items():
        pruned = trial.state == TrialState.PRUNED
        label = f"batch {batch_size} ({trial.params['optimizer']}, lr={trial.params['lr']:.2g})"
        label += " (pruned)" if pruned else ""
        style = {"linestyle": "--" if pruned else "-", "markersize": 3}
        train_curve = record_of(trial).train_loss_curve
        val_curve = val_loss_curve(trial)
        train_axis.plot(
            range(1, len(train_curve) + 1), train_curve, marker="o", label=label, **style
        )
        val_axis.plot(range(1, len(val_curve) + 1), val_curve, marker="s", label=label, **style)
    train_axis.set_title("Training loss (mean of batch losses, CV mean)")
    val_axis.set_title("Validation loss (CV mean)")
    for axis in (train_axis, val_axis):
        axis.set_xlabel("Epoch")
        axis.grid(True, alpha=0.3)
    train_axis.set_ylabel("Loss")
    if best:
        val_axis.legend(fontsize=8)
    else:
        val_axis.text(0.5, 0.5, "no completed trial yet", ha="center", transform=val_axis.transAxes)
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.11, top=0.92, wspace=0.04)
    return figure


def _batch_order(batch_size: str) -> float:
    return float("inf") if batch_size == "full" else float(batch_size)
