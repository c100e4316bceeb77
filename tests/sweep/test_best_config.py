"""The exported config is plain data and rejects what it does not understand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sweep.best_config import BestConfig, Provenance, dumps, load_best_config, write_atomically


def _config(**changes) -> BestConfig:
    fields = dict(
        batch_size="full",
        lr=0.01,
        optimizer="momentum",
        optimizer_kwargs={"weight_decay": 0.0, "momentum": 0.9},
        schedule={"name": "step", "epochs": 10, "step_size": 2, "gamma": 0.5},
        model={"hidden": [8], "activation": "relu", "dropout": 0.0},
        provenance=Provenance("s", 3, 0.5, 0.1, "r2", 0.4, 0.05, 5, 10, 0, "diabetes", "abc"),
    )
    fields.update(changes)
    return BestConfig(**fields)


@pytest.mark.parametrize("fmt,suffix", [("json", ".json"), ("yaml", ".yaml")])
def test_file_round_trip(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"best{suffix}"
    write_atomically(path, dumps(_config(), fmt))
    assert load_best_config(path) == _config()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_optimizer_and_scheduler_follow_the_config() -> None:
    best = _config()
    optimizer = best.make_optimizer(torch.nn.Linear(2, 1).parameters())
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.9
    scheduler = best.make_scheduler(optimizer)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


def test_a_file_that_is_not_a_best_config_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"batch_size": 8}))
    with pytest.raises(ValueError, match="not a batchsweep best config"):
        load_best_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_best_config(tmp_path / "nope.json")
