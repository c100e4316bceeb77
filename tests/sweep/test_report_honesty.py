"""A report never prints a negative, NaN or meaningless figure: the critical batch size is "not
measurable" with its reason unless the measurement resolves it, a batch size whose trials were
all pruned says so instead of printing nan, and a study unchanged since its last report is not
drawn and logged again. Built from real Optuna trials and real measurements; nothing retrained."""

from __future__ import annotations

import json
import math
import re

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from sweep.commands.finish import close_study
from sweep.report import console
from sweep.report.build import StudyReport, build_report
from sweep.report.noise import judge, noise_lines
from sweep.report.rows import rows_as_csv
from sweep.report.snapshot import snapshot_of
from sweep.study.attrs import BUDGET_ATTR, CONTEXT_ATTR, REPORT_MARKER_ATTR
from sweep.study.trial_record import RECORD_ATTR, TrialRecord
from sweep.study.trial_session import noise_attr
from sweep.tracking.memory_sink import MemorySink
from trainers.noise_scale import estimate_noise_scale

CONTEXT = {
    "schedule": {"name": "none", "epochs": 5, "step_size": 10, "gamma": 0.1},
    "model": {"hidden": [8], "activation": "relu", "dropout": 0.0},
    "n_folds": 3,
    "seed": 0,
    "dataset": "synthetic",
    "data_fingerprint": "0" * 16,
    "task": "regression",
    "full_batch_size": 60,
    "lr_scaling": None,
    "input_shape": [3],
    "n_outputs": 1,
    "loss": "mse",
    "metric": "r2",
    "preprocessing": {"standardize": "auto", "standardized_per_fold": True},
}
DISTRIBUTIONS = {
    "batch_size": CategoricalDistribution([8, 16, "full"]),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "optimizer": CategoricalDistribution(["adam"]),
}
# What the report printed in the issue: critical batch size -4 [|G|^2=4.29e-05, tr(Sigma)=-0.000159]
ISSUE_CASE = {
    "stage": "end",
    "epoch": 5,
    "b_simple": -3.7,
    "gradient_sq_norm": 4.29e-05,
    "trace_covariance": -0.000159,
    "gradient_sq_interval": [1e-05, 8e-05],
    "trace_interval": [-0.0009, 0.0006],
    "b_simple_interval": [-20.0, 15.0],
    "small_batch": 8,
    "big_batch": 30,
    "draws": 64,
}
MEASURED = {
    **ISSUE_CASE,
    "b_simple": 40.0,
    "trace_covariance": 0.0017,
    "trace_interval": [0.0009, 0.0025],
    "b_simple_interval": [18.0, 95.0],
}
NEGATIVE_NUMBER = re.compile(r"(?<![\w.])-\d")
NAN = re.compile(r"\bnan\b", re.IGNORECASE)


def _trial(
    number: int,
    batch_size: int | str,
    *,
    loss: float | None,
    noise: list[dict] | None = None,
) -> FrozenTrial:
    complete = loss is not None
    record = TrialRecord(
        metric_name="r2",
        effective_lr=0.01,
        train_loss_curve=[0.9, 0.2],  # below every validation loss: a positive gap
        val_loss_curve=[1.0, loss if complete else 0.9],
        epoch_seconds=0.01,
        gradient_noise=noise or [],
    )
    if complete:
        record.cv_val_loss, record.cv_val_loss_std = loss, 0.01
        record.cv_metric, record.cv_metric_std = 0.8, 0.01
        record.fold_val_loss = [loss - 0.01, loss, loss + 0.01]
        record.updates_per_epoch, record.resolved_batch_size = 8.0, 8.0
        record.n_train_samples, record.peak_memory_bytes = 180.0, 2048.0
        record.memory_kind = "estimate"
    else:
        record.prune_reason = "pruned at epoch 2"
    return create_trial(
        state=TrialState.COMPLETE if complete else TrialState.PRUNED,
        value=loss,
        params={"batch_size": batch_size, "lr": 0.01, "optimizer": "adam"},
        distributions=DISTRIBUTIONS,
        user_attrs={RECORD_ATTR: record.as_attr()},
        intermediate_values={1: 1.0},
    )


def _study(trials: list[FrozenTrial], budget: int | None = None) -> optuna.Study:
    study = optuna.create_study(study_name="honest", storage=optuna.storages.InMemoryStorage())
    study.set_user_attr(BUDGET_ATTR, budget or len(trials))
    study.set_user_attr(CONTEXT_ATTR, CONTEXT)
    study.add_trials(trials)
    return study


def _report(noise: list[dict]) -> StudyReport:
    trials = [
        _trial(0, 8, loss=0.30, noise=noise),
        _trial(1, 16, loss=None),
        _trial(2, 16, loss=None),
        _trial(3, "full", loss=0.60),
    ]
    return build_report(snapshot_of(_study(trials)))


def _everything_printed(report: StudyReport) -> str:
    metrics, params, tags = report.tracking_values()
    return "\n".join(
        [
            console.trials_table(report.snapshot.trials),
            console.batch_size_table(report.rows, report.choice),
            *noise_lines(report.noise, report.noise_note),
            rows_as_csv(report.rows),
            json.dumps(report.as_dict(), allow_nan=False),  # JSON has no NaN: it would raise
            json.dumps({**metrics, **params, **tags}, allow_nan=False),
        ]
    )


def test_the_issues_negative_trace_is_not_measurable_and_nothing_negative_is_printed() -> None:
    """The only negative numbers in the study are the noise estimates: none reaches a report."""
    report = _report([ISSUE_CASE])
    (reading,) = report.noise
    assert not reading.measurable and reading.estimate is None
    assert "tr(Sigma) estimate is not positive" in reading.reason
    text = _everything_printed(report)
    assert "not measurable" in text
    assert NEGATIVE_NUMBER.search(text) is None, NEGATIVE_NUMBER.search(text)
    assert NAN.search(text) is None
    metrics, _params, tags = report.tracking_values()
    assert not any(name.startswith("critical_batch_size") for name in metrics)
    assert "tr(Sigma) estimate is not positive" in tags["critical_batch_size"]
    assert report.as_dict()["critical_batch_size"] is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"trace_interval": [-1e-5, 0.0025]}, "interval of tr(Sigma) over 64 batches reaches zero"),
        ({"gradient_sq_interval": [0.0, 8e-05]}, "interval of |G|^2 over 64 batches reaches zero"),
        ({"gradient_sq_norm": None, "b_simple": None}, "|G|^2 estimate is not positive"),
        ({"b_simple_interval": [18.0, None]}, "unbounded"),
    ],
)
def test_an_estimate_the_batches_do_not_resolve_is_not_measurable(change, reason) -> None:
    reading = judge({**MEASURED, **change}, trial_number=7)
    assert not reading.measurable and reason in reading.reason
    assert noise_lines([reading])[1].strip().startswith("at the end (epoch 5): not measurable")


def test_a_resolved_estimate_prints_with_its_interval_early_and_end_labelled() -> None:
    early = {**MEASURED, "stage": "early", "epoch": 1, "b_simple": 12.0,
             "b_simple_interval": [6.0, 30.0]}  # fmt: skip
    report = _report([MEASURED, early])  # stored in any order, read early first
    assert [r.label for r in report.noise] == ["after epoch 1", "at the end (epoch 5)"]
    lines = noise_lines(report.noise)
    assert "measured on trial 0" in lines[0]
    assert "12 (95% bootstrap interval 6 to 30" in lines[1]
    assert "40 (95% bootstrap interval 18 to 95" in lines[2]
    metrics, _params, tags = report.tracking_values()
    assert metrics["critical_batch_size"] == 40.0 and metrics["critical_batch_size_early"] == 12.0
    assert (metrics["critical_batch_size_low"], metrics["critical_batch_size_high"]) == (18, 95)
    assert "critical_batch_size" not in tags
    assert report.critical_batch_size == 40.0


def test_pure_noise_measured_by_the_estimator_comes_out_not_measurable() -> None:
    """No signal (G = 0), few batches: the real estimator's output, judged, is no batch size."""
    generator = torch.Generator().manual_seed(3)

    def pure_noise(batch: int) -> torch.Tensor:
        return torch.randn(batch, 3, generator=generator, dtype=torch.float64).mean(dim=0)

    scale = estimate_noise_scale(pure_noise, small=2, big=32, draws=64)
    reading = judge(noise_attr(scale, stage="end", epoch=5), trial_number=0)
    assert not reading.measurable
    assert "|G|^2" in reading.reason
    assert NEGATIVE_NUMBER.search("\n".join(noise_lines([reading]))) is None


def test_a_trial_without_a_measurement_says_why() -> None:
    report = _report([])
    assert report.noise == [] and "ran before measurements" in report.noise_note
    assert "not measured (trial 0 ran before" in noise_lines(report.noise, report.noise_note)[0]


def test_a_batch_size_with_every_trial_pruned_says_all_pruned_never_nan() -> None:
    report = _report([MEASURED])
    pruned = next(row for row in report.rows if row.batch_size == "16")
    assert pruned.note == "all pruned (2)"
    table = console.batch_size_table(report.rows, report.choice)
    assert re.search(r"16\s+0\s+2\s+all pruned \(2\)", table)
    csv_line = next(
        line for line in rows_as_csv(report.rows).splitlines() if line.startswith("16,")
    )
    assert csv_line.endswith(",all pruned (2)") and "nan" not in csv_line
    as_json = next(row for row in report.as_dict()["rows"] if row["batch_size"] == "16")
    assert as_json["note"] == "all pruned (2)" and as_json["best_cv_loss"] is None
    assert NAN.search(_everything_printed(report)) is None
    metrics, _params, _tags = report.tracking_values()
    assert all(math.isfinite(value) for value in metrics.values())
    assert not any(name.startswith("batch_size_16/best_cv_loss") for name in metrics)


@pytest.mark.slow
def test_figures_leave_an_all_pruned_batch_size_out_of_their_lines() -> None:
    from sweep.report.figures import close_all, report_figures

    report = _report([MEASURED])
    figures = report_figures(report.snapshot, report.rows, report.choice)
    try:
        axis = figures["cv_score_vs_batch_size.png"].axes[0]
        ticks = [label.get_text() for label in axis.get_xticklabels()]
        assert ticks == ["8", "full"]
        for line in axis.get_lines():
            assert all(math.isfinite(y) for y in line.get_ydata())
        assert "all pruned, not shown: batch 16" in axis.get_title()
    finally:
        close_all(figures)


@pytest.mark.slow
def test_an_unchanged_study_is_not_drawn_and_logged_again(tmp_path) -> None:
    study = _study([_trial(0, 8, loss=0.3, noise=[MEASURED]), _trial(1, "full", loss=0.6)])
    sink = MemorySink()
    run_id = sink.open_study(existing_run_id=None, tags={})
    close_study(study, sink, "FINISHED")
    assert "batch_size_report.csv" in sink.parent.files
    marker = study.user_attrs[REPORT_MARKER_ATTR]
    assert marker == snapshot_of(study).fingerprint

    sink.parent.files.clear()
    sink.open_study(existing_run_id=run_id, tags={})  # each worker reopens the study's run
    report = close_study(study, sink, "FINISHED")  # a worker that found nothing to run
    assert sink.parent.files == {} and report.choice is not None  # built, not logged
    assert sink.parent.status == "FINISHED"

    study.add_trial(_trial(2, 16, loss=0.4))
    sink.open_study(existing_run_id=run_id, tags={})
    close_study(study, sink, "FINISHED")
    assert "batch_size_report.csv" in sink.parent.files  # the study changed: logged again
    assert study.user_attrs[REPORT_MARKER_ATTR] != marker
