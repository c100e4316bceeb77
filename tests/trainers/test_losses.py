"""Losses equal torch's own per sample; metrics equal scikit-learn's on the real rows only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as sk
from torch.nn import functional

from trainers.losses import (
    LOSSES,
    METRICS,
    Metric,
    default_metric_name,
    resolve_loss,
    resolve_metric,
)

GENERATOR = torch.Generator().manual_seed(0)
N_MODELS, N_ROWS, N_CLASSES = 3, 12, 4


def _randn(*shape):
    return torch.randn(*shape, generator=GENERATOR)


def _classes(*shape, n_classes=N_CLASSES):
    return torch.randint(0, n_classes, shape, generator=GENERATOR)


@pytest.mark.parametrize(
    ("name", "outputs", "targets", "reference"),
    [
        ("mse", _randn(3, 5, 1), _randn(3, 5), lambda o, t: functional.mse_loss(o.squeeze(-1), t)),
        ("mse", _randn(3, 5, 2), _randn(3, 5, 2), functional.mse_loss),
        (
            "huber",
            _randn(3, 5, 1) * 3,
            _randn(3, 5),
            lambda o, t: functional.huber_loss(o.squeeze(-1), t),
        ),
        ("cross_entropy", _randn(3, 5, 4), _classes(3, 5), functional.cross_entropy),
        ("cross_entropy", _randn(3, 5, 4, 6), _classes(3, 5, 6), functional.cross_entropy),
        (
            "bce_with_logits",
            _randn(3, 5, 1),
            _classes(3, 5, n_classes=2).float(),
            lambda o, t: functional.binary_cross_entropy_with_logits(o.squeeze(-1), t),
        ),
    ],
)
def test_named_loss_averages_to_torchs_batch_loss(name, outputs, targets, reference):
    per_sample = resolve_loss(name).stacked(outputs, targets)
    assert per_sample.shape == outputs.shape[:2]
    for model in range(outputs.shape[0]):
        expected = reference(outputs[model], targets[model])
        np.testing.assert_allclose(per_sample[model].mean(), expected, rtol=1e-6)


def test_callable_loss_is_vmapped_per_model():
    def squared(outputs, targets):  # one model's batch: (batch, 1) and (batch,)
        return (outputs.squeeze(-1) - targets) ** 2

    outputs, targets = _randn(3, 5, 1), _randn(3, 5)
    np.testing.assert_allclose(
        resolve_loss(squared).stacked(outputs, targets),
        resolve_loss("mse").stacked(outputs, targets),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="one loss per sample"):
        resolve_loss(lambda o, t: (o.squeeze(-1) - t).mean()).stacked(outputs, targets)


def test_mismatched_outputs_and_targets_are_named():
    with pytest.raises(ValueError, match=r"outputs of shape \(3,\) and targets of shape \(\)"):
        resolve_loss("mse").stacked(_randn(2, 4, 3), _randn(2, 4))


def _mask(sizes):
    """``(n_models, N_ROWS)`` with the first ``sizes[m]`` rows real, the rest padding."""
    mask = torch.zeros(len(sizes), N_ROWS)
    for model, size in enumerate(sizes):
        mask[model, :size] = 1
    return mask


SIZES = (12, 9, 7)


def _per_model(metric_name, outputs, targets, mask):
    return resolve_metric(metric_name).stacked(outputs, targets, mask).numpy()


def test_r2_and_mae_match_scikit_learn_on_real_rows():
    outputs, targets, mask = _randn(N_MODELS, N_ROWS, 1), _randn(N_MODELS, N_ROWS), _mask(SIZES)
    outputs[:, -2:] = 1e6  # padding must not count
    r2, mae = (_per_model(name, outputs, targets, mask) for name in ("r2", "mae"))
    for model, size in enumerate(SIZES):
        y_true, y_pred = targets[model, :size].numpy(), outputs[model, :size, 0].numpy()
        np.testing.assert_allclose(r2[model], sk.r2_score(y_true, y_pred), rtol=1e-5)
        np.testing.assert_allclose(mae[model], sk.mean_absolute_error(y_true, y_pred), rtol=1e-5)


@pytest.mark.parametrize("n_logits", [N_CLASSES, 1], ids=["multiclass", "binary-one-logit"])
def test_classification_metrics_match_scikit_learn_on_real_rows(n_logits):
    n_classes = max(2, n_logits)
    outputs = _randn(N_MODELS, N_ROWS, n_logits)
    targets, mask = _classes(N_MODELS, N_ROWS, n_classes=n_classes), _mask(SIZES)
    targets[:, :n_classes] = torch.arange(n_classes)  # every class present: the AUC is defined
    values = {
        name: _per_model(name, outputs, targets, mask)
        for name in ("accuracy", "f1_macro", "roc_auc")
    }
    for model, size in enumerate(SIZES):
        y_true, logits = targets[model, :size].numpy(), outputs[model, :size].numpy()
        if n_logits == 1:
            y_pred, scores = (logits[:, 0] > 0).astype(int), logits[:, 0]
            auc = sk.roc_auc_score(y_true, scores)
        else:
            y_pred = logits.argmax(-1)
            probs = torch.softmax(outputs[model, :size], -1).numpy()
            auc = sk.roc_auc_score(y_true, probs, multi_class="ovr", labels=range(n_classes))
        np.testing.assert_allclose(
            values["accuracy"][model], sk.accuracy_score(y_true, y_pred), rtol=1e-6
        )
        f1 = sk.f1_score(y_true, y_pred, average="macro", zero_division=0)
        np.testing.assert_allclose(values["f1_macro"][model], f1, rtol=1e-5)
        np.testing.assert_allclose(values["roc_auc"][model], auc, rtol=1e-5)


def test_roc_auc_is_nan_when_a_fold_holds_one_class():
    targets = torch.zeros(1, N_ROWS, dtype=torch.long)
    value = _per_model("roc_auc", _randn(1, N_ROWS, 2), targets, torch.ones(1, N_ROWS))
    assert np.isnan(value[0])


def test_callable_metric_sees_each_models_real_rows():
    seen = []

    def count_rows(outputs, targets):
        seen.append(len(targets))
        return float(outputs.sum())

    metric = resolve_metric(count_rows, higher_is_better=False)
    assert isinstance(metric, Metric) and metric.name == "count_rows"
    metric.stacked(_randn(N_MODELS, N_ROWS, 1), _randn(N_MODELS, N_ROWS), _mask(SIZES))
    assert seen == list(SIZES)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve_loss("l1"), "loss='l1' is not one of"),
        (lambda: resolve_metric("auc"), "metric='auc' is not one of"),
        (lambda: resolve_metric(lambda o, t: 0.0), "pass higher_is_better"),
        (lambda: resolve_metric("mae", higher_is_better=True), "leave it unset"),
        (lambda: default_metric_name(resolve_loss(lambda o, t: o)), "cannot be guessed"),
    ],
)
def test_bad_names_and_missing_directions_are_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_registries_know_their_directions():
    assert sorted(LOSSES) == ["bce_with_logits", "cross_entropy", "huber", "mse"]
    directions = {name: cls.higher_is_better for name, cls in METRICS.items()}
    assert directions == {
        "r2": True,
        "accuracy": True,
        "f1_macro": True,
        "roc_auc": True,
        "mae": False,
    }
