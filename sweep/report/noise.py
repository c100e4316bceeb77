"""The critical batch size as a report states it: an estimate with its interval where the
measurement resolves one, and "not measurable" with the reason where it does not.

The gradient noise scale is measured during the sweep (:func:`sweep.study.trial_session.
record_gradient_noise`) after the first epoch and at the end of training, and stored in the trial's
record. Here it is only judged and worded: no torch, no training.

B_simple = tr(Σ) / |G|² is a ratio of two estimates, each a difference of noisy means. When
either is not positive, or its 95% bootstrap interval over the measuring batches reaches zero,
their ratio is sampling noise, not a batch size (a negative "critical batch size" was printed
before this rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from sweep.study.trial_record import record_of

STAGE_ORDER = ("early", "end")


@dataclass(frozen=True)
class NoiseReading:
    """One measurement of one trial, judged: ``estimate`` and ``interval`` when measurable,
    else ``reason`` says why not."""

    trial_number: int
    stage: str  # "early" (after the first epoch) or "end" (after the last)
    epoch: int
    small_batch: int
    big_batch: int
    draws: int
    estimate: float | None = None  # B_simple
    interval: tuple[float, float] | None = None  # its 95% bootstrap interval
    gradient_sq_norm: float | None = None  # |G|², shown only when measurable
    trace_covariance: float | None = None  # tr(Σ), shown only when measurable
    reason: str = ""  # why not measurable

    @property
    def measurable(self) -> bool:
        return self.estimate is not None

    @property
    def label(self) -> str:
        if self.stage == "early":
            return f"after epoch {self.epoch}"
        return f"at the end (epoch {self.epoch})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "epoch": self.epoch,
            "label": self.label,
            "trial_number": self.trial_number,
            "measurable": self.measurable,
            "critical_batch_size": self.estimate,
            "interval_95": list(self.interval) if self.interval else None,
            "gradient_sq_norm": self.gradient_sq_norm,
            "trace_covariance": self.trace_covariance,
            "reason": self.reason or None,
            "small_batch": self.small_batch,
            "big_batch": self.big_batch,
            "draws": self.draws,
        }


def noise_readings(trial: FrozenTrial) -> list[NoiseReading]:
    """The trial's stored measurements, judged, early first; [] when it has none."""
    stored = sorted(
        record_of(trial).gradient_noise,
        key=lambda m: STAGE_ORDER.index(m["stage"]) if m.get("stage") in STAGE_ORDER else 2,
    )
    return [judge(measurement, trial_number=trial.number) for measurement in stored]


def missing_note(trial: FrozenTrial) -> str:
    """Why a trial has no measurement."""
    return record_of(trial).gradient_noise_note or (
        f"trial {trial.number} ran before measurements were stored with the study"
    )


def judge(measurement: dict[str, Any], *, trial_number: int) -> NoiseReading:
    """The honesty rule: an estimate only when |G|² and tr(Σ) are both positive and both
    bootstrap intervals stay above zero."""
    small, big, draws = (
        int(measurement["small_batch"]),
        int(measurement["big_batch"]),
        int(measurement["draws"]),
    )
    base = {
        "trial_number": trial_number,
        "stage": str(measurement.get("stage", "end")),
        "epoch": int(measurement.get("epoch", 0)),
        "small_batch": small,
        "big_batch": big,
        "draws": draws,
    }
    resolved = f"{draws} batches each of {small} and {big} samples resolve"
    for key, name, what in (
        ("trace_covariance", "tr(Sigma)", "the gradient's noise"),
        ("gradient_sq_norm", "|G|^2", "the gradient's signal"),
    ):
        value = _number(measurement.get(key))
        if not value > 0:
            return NoiseReading(
                **base,
                reason=f"the {name} estimate is not positive: {what} is below what {resolved}",
            )
    for key, name in (("trace_interval", "tr(Sigma)"), ("gradient_sq_interval", "|G|^2")):
        low, high = _pair(measurement.get(key))
        if not (low > 0 and high > 0):
            return NoiseReading(
                **base,
                reason=f"the 95% bootstrap interval of {name} over {draws} batches reaches zero",
            )
    estimate = _number(measurement.get("b_simple"))
    low, high = _pair(measurement.get("b_simple_interval"))
    if not (math.isfinite(estimate) and 0 < low <= high and math.isfinite(high)):
        return NoiseReading(
            **base, reason="the bootstrap interval of the ratio tr(Sigma) / |G|^2 is unbounded"
        )
    return NoiseReading(
        **base,
        estimate=estimate,
        interval=(low, high),
        gradient_sq_norm=_number(measurement["gradient_sq_norm"]),
        trace_covariance=_number(measurement["trace_covariance"]),
    )


def noise_lines(readings: list[NoiseReading], note: str = "") -> list[str]:
    """The terminal's lines: a heading, then one line per stage."""
    title = "critical batch size (gradient noise scale B_simple, McCandlish et al. 2018)"
    if not readings:
        return [f"{title}: not measured ({note or 'no completed trial'})"]
    first = readings[0]
    lines = [
        f"{title}, measured on trial {first.trial_number} (fold 0) at batch sizes "
        f"{first.small_batch} and {first.big_batch}; it grows as training goes on:"
    ]
    width = max(len(reading.label) for reading in readings)
    for reading in readings:
        if reading.measurable:
            low, high = reading.interval or (math.nan, math.nan)
            text = (
                f"{reading.estimate:,.0f} (95% bootstrap interval {low:,.0f} to {high:,.0f}; "
                f"|G|^2={reading.gradient_sq_norm:.3g}, tr(Sigma)={reading.trace_covariance:.3g})"
            )
        else:
            text = f"not measurable: {reading.reason}"
        lines.append(f"  {reading.label + ':':<{width + 1}} {text}")
    return lines


def noise_tracking_values(readings: list[NoiseReading]) -> tuple[dict[str, float], dict[str, str]]:
    """MLflow metrics (finite, positive estimates only) and tags (the reasons) of the readings.
    The end's estimate keeps the name ``critical_batch_size``; the early one is suffixed."""
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for reading in readings:
        name = "critical_batch_size" + ("_early" if reading.stage == "early" else "")
        if reading.measurable and reading.interval is not None:
            metrics[name] = float(reading.estimate or 0.0)
            metrics[f"{name}_low"], metrics[f"{name}_high"] = reading.interval
        else:
            tags[name] = f"not measurable {reading.label}: {reading.reason}"
    return metrics, tags


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _pair(value: Any) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return _number(value[0]), _number(value[1])
    return math.nan, math.nan
