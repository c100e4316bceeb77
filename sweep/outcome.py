"""The types the commands hand each other: what a validated ``sweep run`` is to do (:class:`RunPlan`)
and what it did (:class:`SweepOutcome`). A bottom module: it imports no other part of sweep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from search_spaces import SweepSpec
    from trainers import Dataset, Fold


@dataclass(frozen=True)
class RunPlan:
    """Everything a sweep needs, every part of it already checked: nothing fails on bad input
    after this exists."""

    spec: SweepSpec
    dataset: Dataset
    folds: list[Fold]
    device: torch.device
    study_name: str
    storage_url: str
    tracking_uri: str
    resuming: bool  # the study exists already


@dataclass(frozen=True)
class SweepOutcome:
    study_name: str
    storage_url: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    trials_run: int
    counted_trials: int
    budget: int
    worker_exit_codes: tuple[int, ...] = ()  # with --workers: each worker process's exit status
    seconds: float = 0.0  # this process's sweep, from opening the stores to the report's end
    training_seconds: float = 0.0  # of which in the training engine
