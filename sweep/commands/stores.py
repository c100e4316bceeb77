"""Open a study's Optuna study and its tracking run, creating each exactly once.

Workers that start together all come through here; the creation lock makes the first one create
the study and the study's run, and the others find them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import optuna

from sweep.errors import TrackingProcessError
from sweep.outcome import RunPlan
from sweep.provenance.dataset_facts import DatasetFacts
from sweep.provenance.redact import redact_url
from sweep.study.attrs import PARENT_RUN_ATTR
from sweep.study.creation_lock import creation_lock
from sweep.study.resume import open_study
from sweep.tracking import tracking_process
from sweep.tracking.sink import TrackingSink
from trainers.problem import DEFAULT_LOSS, DEFAULT_METRIC, n_outputs_of, standardizes

logger = logging.getLogger(__name__)


def open_stores(plan: RunPlan) -> tuple[optuna.Study, TrackingSink]:
    """The study and an MLflow sink whose study run is the study's (created here if missing).

    The sink is the tracking process's when the ``sweep`` program started one (this process
    then never loads MLflow), else an MLflow sink in this process.
    """
    spec = plan.spec
    with creation_lock(plan.storage_url):
        sink = _tracking_sink(plan)
        study = open_study(
            spec,
            study_name=plan.study_name,
            storage_url=plan.storage_url,
            context=_context(plan),
            storage=plan.storage,
        )
        existing = study.user_attrs.get(PARENT_RUN_ATTR)
        parent_run_id = sink.open_study(
            existing_run_id=existing,
            tags={
                "study": plan.study_name,
                "space": spec.path,
                "storage": redact_url(plan.storage_url),
            },
        )
        if existing != parent_run_id:
            study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
            sink.log_study_params(_space_params(plan))
    return study, sink


def _tracking_sink(plan: RunPlan) -> TrackingSink:
    dataset, space_file = DatasetFacts.of(plan.dataset), plan.spec.path
    process = tracking_process.started()
    if process is not None:
        from sweep.tracking.process_sink import ProcessSink

        try:
            return ProcessSink(
                process, plan.tracking_uri, plan.study_name, dataset=dataset, space_file=space_file
            )
        except TrackingProcessError as err:  # gone before anything was handed over
            logger.warning("%s MLflow runs in this process instead.", err)
    from sweep.tracking.mlflow_context import run_context  # MLflow: this process's own sink
    from sweep.tracking.mlflow_sink import MlflowSink

    context = run_context(dataset, space_file=space_file)
    return MlflowSink(plan.tracking_uri, plan.study_name, context=context)


def _context(plan: RunPlan) -> dict[str, Any]:
    """What an exported best config needs beyond the trial's own params."""
    spec, dataset = plan.spec, plan.dataset
    return {
        "schedule": {
            "name": spec.training.schedule,
            "epochs": spec.training.epochs,
            "step_size": spec.training.step_size,
            "gamma": spec.training.gamma,
        },
        "model": {"factory": spec.model.factory, "kwargs": spec.model.kwargs}
        if spec.model.factory is not None
        else {
            k: v
            for k, v in dataclasses.asdict(spec.model).items()
            if k not in ("factory", "kwargs")
        },
        "n_folds": spec.cv.folds,
        "seed": spec.cv.seed,
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint,
        "task": dataset.task,
        "full_batch_size": max(len(fold.train_idx) for fold in plan.folds),
        "lr_scaling": None
        if spec.search.lr_scaling is None
        else dataclasses.asdict(spec.search.lr_scaling),
        # what build_model() and the reuse of the config need
        "input_shape": list(dataset.X.shape[1:]),
        "n_outputs": n_outputs_of(dataset),
        "loss": _name(plan.inputs.loss, DEFAULT_LOSS[dataset.task], spec.loss),
        "metric": _name(plan.inputs.metric, DEFAULT_METRIC[dataset.task], spec.metric),
        "preprocessing": {
            "standardize": spec.preprocess.standardize,
            # features and a regression target, per fold on its train part
            "standardized_per_fold": standardizes(dataset, spec.preprocess.standardize),
        },
    }


def _name(value: object, default: str, written: str) -> str:
    """A loss or metric as the space names it: auto resolved, a user's function by reference."""
    if written == "auto":
        return default
    return written if callable(value) else str(value)


def _space_params(plan: RunPlan) -> dict[str, Any]:
    spec, dataset = plan.spec, plan.dataset
    return {
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint,
        "task": dataset.task,
        "n_rows": dataset.n_samples,
        "n_features": dataset.n_features,
        "sample_shape": list(dataset.sample_shape),
        "dropped_rows": dataset.dropped_rows,  # dataset.missing: drop_rows
        "folds": spec.cv.folds,
        "epochs": spec.training.epochs,
        "schedule": spec.training.schedule,
        "precision": spec.training.precision,  # capture is each worker's own choice
        **(
            {"model_factory": spec.model.factory, "model_kwargs": spec.model.kwargs}
            if spec.model.factory is not None
            else {
                "model_hidden": list(spec.model.hidden),
                "model_activation": spec.model.activation,
            }
        ),
        "loss": spec.loss,
        "metric": spec.metric,
        "search_batch_size": list(spec.search.batch_size),
        "search_optimizer": list(spec.search.optimizer),
        "search_lr": spec.search.lr,
        "sampler": spec.sampler.name,
        "pruner": spec.pruner,
    }
