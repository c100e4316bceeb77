"""The study run's description in the MLflow UI (the ``mlflow.note.content`` tag, Markdown): the
batch-size table, the chosen batch size and the rule that chose it, the critical batch size and
the best config. Rendered from a :class:`~sweep.report.build.StudyReport` each time the report is
written, so the description follows the report."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from sweep.report.noise import noise_lines

if TYPE_CHECKING:
    from sweep.report.build import StudyReport
    from sweep.report.rows import BatchSizeRow

NOTE_TAG = "mlflow.note.content"  # what the UI shows, and edits, as the run's description
MAX_NOTE_CHARS = 7500  # MLflow's tag values hold 8000 characters
RULES = {
    "one-standard-error": "the largest batch size whose best CV loss is within one standard "
    "error of the lowest (the one-standard-error rule)",
    "argmin": "the lowest CV loss (one batch size tried, or nothing to trade)",
}


def study_description(report: StudyReport) -> str:
    """The Markdown description of the study's run.

    Example:
        >>> print(study_description(report))  # doctest: +SKIP
        ### Study `default`: batch size 64
        ...
    """
    snapshot, choice = report.snapshot, report.choice
    title = f"### Study `{snapshot.name}`"
    if choice is None:
        return f"{title}\n\nNo completed trial yet ({snapshot.counted}/{snapshot.budget} trials)."
    sections = [
        f"{title}: batch size **{choice.batch_size}**",
        f"{snapshot.counted}/{snapshot.budget} trials counted. Chosen batch size "
        f"**{choice.batch_size}**, by {RULES.get(choice.rule, choice.rule)}; the lowest CV loss "
        f"was at batch size {choice.argmin_batch_size}.",
        f"Critical batch size: {_critical(report)}",
        "#### Per batch size\n\n" + _table(report.rows),
    ]
    best = _best_config(report)
    text = "\n\n".join([*sections, best])
    if len(text) > MAX_NOTE_CHARS:  # the table is what a reader came for; the config is a file
        text = "\n\n".join([*sections, "Best config: see the run's `best_config.json` artifact."])
    return text[:MAX_NOTE_CHARS]


def _critical(report: StudyReport) -> str:
    """The report's judged readings (after epoch 1 and at the end), as Markdown lines."""
    lines = noise_lines(report.noise, report.noise_note)
    if len(lines) == 1:  # not measured, and why
        return lines[0].split(": ", 1)[1] + "."
    return "\n".join(
        [
            "measured" + lines[0].split(", measured", 1)[1],
            *(f"- {line.strip()}" for line in lines[1:]),
        ]
    )


def _table(rows: list[BatchSizeRow]) -> str:
    lines = [
        "| batch | done | pruned | best CV loss | median CV loss | metric | s/epoch | epochs to converge |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.batch_size} | {row.completed} | {row.pruned} "
            f"| {_pm(row.best_cv_loss, row.best_cv_loss_std)} "
            f"| {_pm(row.median_cv_loss, row.median_cv_loss_std)} "
            f"| {_number(row.best_cv_metric, '.3f', signed=True)} | {_number(row.seconds_per_epoch, '.4f')} "
            f"| {_number(row.epochs_to_converge, '.0f')} |"
        )
    return "\n".join(lines) + "\n\nCV loss: mean ± std over folds; n/a: no completed trial."


def _best_config(report: StudyReport) -> str:
    if report.best is None:
        return "Best config: none yet."
    config = report.best.to_dict()
    config.pop("provenance", None)  # in best_config.json; the description stays short
    trial = report.recommended.number if report.recommended is not None else "?"
    return (
        f"#### Best config (trial {trial}; `best_config.json`)\n\n```json\n"
        + json.dumps(config, indent=2, default=str)
        + "\n```"
    )


def _number(value: float, spec: str, *, signed: bool = False) -> str:
    """A figure, or n/a where there is none (a time or a count is never negative; a metric such
    as R² may be)."""
    return format(value, spec) if math.isfinite(value) and (signed or value >= 0) else "n/a"


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f}"
