"""Open a study's Optuna study and MLflow parent run, creating each exactly once.

Workers that start together all come through here; the creation lock makes the first one create
the study and the parent run, and the others find them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from search_spaces import SweepSpec
from sweep.creation_lock import creation_lock
from sweep.study import open_study
from sweep.tracking import PARENT_RUN_ATTR, Tracker
from trainers import Dataset, Fold


def open_stores(
    spec: SweepSpec,
    dataset: Dataset,
    folds: list[Fold],
    *,
    study_name: str,
    storage_url: str,
    tracking_uri: str,
) -> tuple[optuna.Study, Tracker]:
    """The study and a tracker whose parent run is the study's (created here if missing)."""
    with creation_lock(storage_url):
        tracker = Tracker(tracking_uri, study_name)
        study = open_study(
            spec,
            study_name=study_name,
            storage_url=storage_url,
            context=_context(spec, dataset, folds),
        )
        existing = study.user_attrs.get(PARENT_RUN_ATTR)
        parent_run_id = tracker.open_parent(
            existing_run_id=existing,
            tags={"study": study_name, "space": spec.path, "storage": storage_url},
        )
        if existing != parent_run_id:
            study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
            _log_space(tracker, spec, dataset)
    return study, tracker


def _context(spec: SweepSpec, dataset: Dataset, folds: list[Fold]) -> dict[str, Any]:
    """What an exported best config needs beyond the trial's own params."""
    return {
        "schedule": {
            "name": spec.training.schedule,
            "epochs": spec.training.epochs,
            "step_size": spec.training.step_size,
            "gamma": spec.training.gamma,
        },
        "model": dataclasses.asdict(spec.model),
        "n_folds": spec.cv.folds,
        "seed": spec.cv.seed,
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint,
        "task": dataset.task,
        "full_batch_size": max(len(fold.train_idx) for fold in folds),
        "lr_scaling": None
        if spec.search.lr_scaling is None
        else dataclasses.asdict(spec.search.lr_scaling),
    }


def _log_space(tracker: Tracker, spec: SweepSpec, dataset: Dataset) -> None:
    buffer = tracker.parent_buffer()
    buffer.param_dict(
        {
            "dataset": dataset.name,
            "data_fingerprint": dataset.fingerprint,
            "task": dataset.task,
            "n_rows": dataset.n_samples,
            "n_features": dataset.n_features,
            "folds": spec.cv.folds,
            "epochs": spec.training.epochs,
            "schedule": spec.training.schedule,
            "precision": spec.training.precision,  # capture is each worker's own choice
            "model_hidden": list(spec.model.hidden),
            "model_activation": spec.model.activation,
            "search_batch_size": list(spec.search.batch_size),
            "search_optimizer": list(spec.search.optimizer),
            "search_lr": spec.search.lr,
            "sampler": spec.sampler.name,
            "pruner": spec.pruner,
        }
    )
    buffer.flush()
