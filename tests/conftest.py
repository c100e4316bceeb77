"""Shared fixtures: every test that touches the stores runs in its own empty folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with the default SQLite stores (no env overrides)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SWEEP_STORAGE", raising=False)
    return tmp_path


def write_space(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


TINY_SPACE = """
name: {name}
dataset: {{source: iris}}
model: {{hidden: [8]}}
cv: {{folds: 3, seed: 0}}
training: {{epochs: {epochs}, device: cpu}}
search:
  batch_size: [16, full]
  lr: {lr}
  optimizer: [{optimizers}]
sampler: {{name: random, seed: 0}}
pruner: none
budget: {{trials: {trials}}}
"""


def tiny_space(
    folder: Path,
    *,
    name: str = "tiny",
    epochs: int = 3,
    trials: int = 3,
    lr: str = "{low: 0.001, high: 0.1}",
    optimizers: str = "sgd, adam",
) -> Path:
    """A search space small enough for an end-to-end test in about a second."""
    text = TINY_SPACE.format(name=name, epochs=epochs, trials=trials, lr=lr, optimizers=optimizers)
    return write_space(folder, name, text)
