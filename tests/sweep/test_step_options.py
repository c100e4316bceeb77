"""training.precision and training.capture from the YAML or the flags to the engine, and what
they do to a study's identity."""

from __future__ import annotations

import dataclasses

import pytest

from search_spaces import load_space
from sweep.study.resume import space_fingerprint


def _with_training(spec, **changes):
    return dataclasses.replace(spec, training=dataclasses.replace(spec.training, **changes))


def test_capture_never_changes_the_fingerprint_and_bf16_does() -> None:
    spec = load_space("quick")
    assert space_fingerprint(_with_training(spec, capture="compile")) == space_fingerprint(spec)
    assert space_fingerprint(_with_training(spec, precision="bf16")) != space_fingerprint(spec)


@pytest.mark.parametrize(
    ("space", "stored"),
    # the fingerprints batchsweep stored at 5a2c42a, before precision, capture, factories,
    # loss, metric and preprocess were keys
    [
        ("quick", "29f2b90de76bbb16"),
        ("default", "692b6ad031af99f7"),
        ("seed_article", "2ec9c17b5c4ae27e"),
    ],
)
def test_studies_made_before_the_keys_existed_still_resume(space: str, stored: str) -> None:
    """An fp32 space with the built-in MLP and the usual loss keeps the fingerprint it had, so
    a study created then is not refused as 'a different space'."""
    assert space_fingerprint(load_space(space)) == stored


def test_a_model_factory_a_loss_or_preprocessing_changes_the_fingerprint() -> None:
    spec = load_space("quick")
    changed = [
        dataclasses.replace(spec, model=dataclasses.replace(spec.model, factory="m.py:f")),
        dataclasses.replace(spec, loss="cross_entropy"),
        dataclasses.replace(
            spec, preprocess=dataclasses.replace(spec.preprocess, standardize="features")
        ),
    ]
    prints = {space_fingerprint(s) for s in changed}
    assert len(prints) == 3 and space_fingerprint(spec) not in prints
