"""The report's figures, drawn with matplotlib from the study's real trials."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402

from sweep.report.learning_curves_plot import learning_curves_figure  # noqa: E402
from sweep.report.rows import BatchSizeChoice, BatchSizeRow  # noqa: E402
from sweep.report.snapshot import StudySnapshot, as_study  # noqa: E402
from sweep.study.objectives import cv_loss  # noqa: E402
from sweep.study.trial_record import record_of  # noqa: E402

# The figures one process draws when two share the work (sweep.tracking.tracking_server): about
# as long to draw (learning curves ~70 ms, the log-log scatter ~75 ms) as the other five.
FIRST_PART = ("learning_curves.png", "lr_vs_batch_size.png")


def report_figures(
    snapshot: StudySnapshot,
    rows: list[BatchSizeRow],
    choice: BatchSizeChoice | None,
    importances: Mapping[str, float] | None = None,
    *,
    part: int | None = None,
) -> dict[str, Figure]:
    """Artifact file name -> figure. The caller closes them (:func:`close_all`).
    ``importances``: the report's parameter importances (none: no importance figure).
    ``part``: 0 for the :data:`FIRST_PART` only, 1 for the others, None for all."""
    # A batch size whose trials were all pruned has no score: it is left out of the lines (and
    # named in the title) rather than drawn as a gap or a NaN.
    scored = [row for row in rows if not row.note]
    left_out = [row.batch_size for row in rows if row.note]
    builders = {
        "learning_curves.png": lambda: learning_curves_figure(snapshot.trials),
        "cv_score_vs_batch_size.png": lambda: _score_figure(scored, choice, left_out),
        "time_and_memory_vs_batch_size.png": lambda: _cost_figure(scored, left_out),
        "lr_vs_batch_size.png": lambda: _lr_figure(snapshot.complete),
    }
    figures = {
        name: build()
        for name, build in builders.items()
        if part is None or (name in FIRST_PART) == (part == 0)
    }
    if part != 0:
        figures.update(_optuna_figures(snapshot, importances or {}))
    return figures


def close_all(figures: dict[str, Figure]) -> None:
    for figure in figures.values():
        plt.close(figure)


def _positions(rows: list[BatchSizeRow]) -> tuple[list[int], list[str]]:
    return list(range(len(rows))), [row.batch_size for row in rows]


def _left_out(title: str, left_out: list[str]) -> str:
    return f"{title}\n(all pruned, not shown: batch {', '.join(left_out)})" if left_out else title


def _score_figure(
    rows: list[BatchSizeRow], choice: BatchSizeChoice | None, left_out: list[str]
) -> Figure:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    x, labels = _positions(rows)
    axis.errorbar(
        x, [r.best_cv_loss for r in rows], yerr=[r.best_cv_loss_std for r in rows],
        fmt="o-", capsize=4, label="best trial (± std over folds)",
    )  # fmt: skip
    axis.errorbar(
        [p + 0.08 for p in x], [r.median_cv_loss for r in rows],
        yerr=[r.median_cv_loss_std for r in rows], fmt="s--", capsize=4, alpha=0.6,
        label="median trial",
    )  # fmt: skip
    if choice is not None:
        axis.axhline(choice.threshold, color="grey", linestyle=":", label="best + 1 standard error")
        axis.axvline(labels.index(choice.batch_size), color="green", alpha=0.3, linewidth=8,
                     label=f"chosen: {choice.batch_size} ({choice.rule})")  # fmt: skip
    axis.set_xticks(x, labels)
    axis.set_xlabel("Batch size")
    axis.set_ylabel("CV validation loss")
    axis.set_title(_left_out("CV score vs batch size", left_out), fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.subplots_adjust(left=0.11, right=0.98, bottom=0.11, top=0.89 if left_out else 0.93)
    return figure


def _cost_figure(rows: list[BatchSizeRow], left_out: list[str]) -> Figure:
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4))
    x, labels = _positions(rows)
    time_axis.bar(x, [r.seconds_per_epoch for r in rows], color="tab:blue")
    time_axis.set_ylabel("seconds per epoch (per trial)")
    time_axis.set_title("Time per epoch")
    memory_axis.bar(x, [r.peak_memory_bytes / 2**20 for r in rows], color="tab:orange")
    kind = rows[0].memory_kind if rows else "estimate"
    memory_axis.set_ylabel(f"MiB ({'CUDA peak' if kind.startswith('cuda') else 'estimated'})")
    memory_axis.set_title("Peak device memory per trial")
    for axis in (time_axis, memory_axis):
        axis.set_xticks(x, labels)
        axis.set_xlabel("Batch size")
        axis.grid(True, axis="y", alpha=0.3)
    if left_out:
        figure.suptitle(_left_out("", left_out).strip(), fontsize=9)
    figure.subplots_adjust(left=0.07, right=0.99, bottom=0.12, top=0.86, wspace=0.22)
    return figure


def _lr_figure(complete: list[FrozenTrial]) -> Figure:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    if complete:
        batch = [record_of(t).resolved_batch_size for t in complete]
        points = axis.scatter(
            batch,
            [t.params["lr"] for t in complete],
            c=[cv_loss(t) for t in complete],
            cmap="viridis_r",
        )
        figure.colorbar(points, ax=axis, label="CV validation loss")
        axis.set_xscale("log")
        axis.set_yscale("log")
    axis.set_xlabel("Batch size (samples per step)")
    axis.set_ylabel("Learning rate")
    axis.set_title("Learning rate vs batch size, completed trials")
    axis.grid(True, alpha=0.3)
    figure.subplots_adjust(left=0.13, right=0.98, bottom=0.11, top=0.93)
    return figure


def importance_figure(importances: Mapping[str, float]) -> Figure:
    """The parameters' importances (:func:`sweep.report.importances.param_importances`) as
    horizontal bars, largest on top, each with its value."""
    figure, axis = plt.subplots()
    ranked = sorted(importances.items(), key=lambda item: item[1])
    names, values = [name for name, _ in ranked], [value for _, value in ranked]
    bars = axis.barh(names, values, color="tab:blue")
    axis.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.01 else "<0.01" for v in values], padding=3)
    axis.set_xlim(0, max(max(values) * 1.15, 0.05))
    axis.set_title("Hyperparameter importances (of the CV loss)")
    axis.set_xlabel("Importance (sums to 1)")
    axis.grid(True, axis="x", alpha=0.3)
    return figure


def _optuna_figures(snapshot: StudySnapshot, importances: Mapping[str, float]) -> dict[str, Figure]:
    """Optuna's own optimization history and parameter importances (matplotlib backend); the
    importances are the report's, computed where the sweep has scikit-learn loaded."""
    figures: dict[str, Figure] = {}
    multi_objective = snapshot.n_objectives > 1
    target = {"target": cv_loss, "target_name": "CV loss"} if multi_objective else {}
    study = as_study(snapshot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is "experimental"
        try:
            axis = optuna.visualization.matplotlib.plot_optimization_history(study, **target)
            figures["optimization_history.png"] = axis.figure
        except (ValueError, RuntimeError):
            pass
        if importances:
            figures["param_importances.png"] = importance_figure(importances)
        if multi_objective:
            try:
                axis = optuna.visualization.matplotlib.plot_pareto_front(
                    study, target_names=["CV loss", "seconds per epoch"]
                )
                figures["pareto_front.png"] = axis.figure
            except (ValueError, RuntimeError):
                pass
    for name, figure in figures.items():
        figure.set_size_inches(8, 5)
        figure.subplots_adjust(**_OPTUNA_MARGINS.get(name, {}), bottom=0.11, top=0.92)
    return figures


# Fixed margins, far cheaper than tight_layout: the history's legend sits right of its axes, the
# importances' bars need room on the left for the longest parameter name (weight_decay).
_OPTUNA_MARGINS = {
    "optimization_history.png": {"left": 0.09, "right": 0.73},
    "param_importances.png": {"left": 0.17, "right": 0.97},
    "pareto_front.png": {"left": 0.1, "right": 0.97},
}
