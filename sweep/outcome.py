"""The types the commands hand each other: what the trials train on (:class:`Inputs`), what a
validated ``sweep run`` is to do (:class:`RunPlan`) and what it did (:class:`SweepOutcome`). A
bottom module: it imports no other part of sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from search_spaces import SweepSpec
    from sweep.report.build import StudyReport
    from trainers import Dataset, Fold
    from trainers.problem import ModelChoice, TrainingProblem


@dataclass(frozen=True)
class Inputs:
    """What the trials train on, every part checked: the data, its folds, the device, and the
    model, loss and metric (the user's functions loaded and tried once)."""

    dataset: Dataset
    folds: list[Fold]
    device: torch.device
    model: ModelChoice  # the built-in MLP or the user's factory
    loss: str | Callable  # a name, or the user's function
    metric: str | Callable
    standardize: str = "auto"  # the space's preprocess.standardize
    threads: int | None = None  # the space's training.threads; None: chosen per stack

    def problem(self) -> TrainingProblem:
        """The data on the device and the engine its trials train on."""
        from trainers.problem import make_problem  # torch: loaded by the commands that train

        return make_problem(
            self.dataset,
            self.folds,
            device=self.device,
            model=self.model,
            loss=self.loss,
            metric=self.metric,
            standardize=self.standardize,
            threads=self.threads,
        )


@dataclass(frozen=True)
class RunPlan:
    """Everything a sweep needs, every part of it already checked: nothing fails on bad input
    after this exists."""

    spec: SweepSpec
    inputs: Inputs
    study_name: str
    storage_url: str
    tracking_uri: str
    resuming: bool  # the study exists already
    # the Optuna storage the checks opened, used again to open the study (None: open one)
    storage: Any = field(default=None, compare=False, repr=False)

    @property
    def dataset(self) -> Dataset:
        return self.inputs.dataset

    @property
    def folds(self) -> list[Fold]:
        return self.inputs.folds

    @property
    def device(self) -> torch.device:
        return self.inputs.device


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
    report: StudyReport | None = None  # the batch-size report written at the end
