"""Build a :class:`~sweep.best_config.BestConfig` from a study's recommended trial."""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial

from sweep.best_config_data import BestConfig, Provenance, library_versions
from sweep.errors import UsageError
from sweep.locations import resolve_storage, sqlite_path
from sweep.lr_scaling import resolve_rule
from sweep.provenance.redact import redact_url
from sweep.report.selection import recommended_trial
from sweep.report.snapshot import StudySnapshot, snapshot_of
from sweep.study.objectives import argmin_trial, cv_loss
from sweep.study.trial_record import record_of
from trainers.vocabulary import OPTIMIZERS


def best_config_from_study(study_name: str, *, storage: str | None = None) -> BestConfig:
    """The best COMPLETE trial of a stored study, as a BestConfig.

    Raises:
        UsageError: no such storage or study, or no completed trial yet.
    """
    url = resolve_storage(storage)
    db_file = sqlite_path(url)
    if db_file is not None and not db_file.exists():
        raise UsageError(
            f"--study {study_name!r}: no study storage at {redact_url(url)}. Run `make sweep` first."
        )
    try:
        study = optuna.load_study(study_name=study_name, storage=url)
    except KeyError as err:
        names = optuna.get_all_study_names(storage=url)
        raise UsageError(
            f"--study {study_name!r} does not exist in {redact_url(url)}. Studies there: {', '.join(names) or 'none'}."
        ) from err
    snapshot = snapshot_of(study)
    recommended = recommended_trial(snapshot.trials)
    if recommended is None:
        raise UsageError(
            f"--study {study_name!r} has no completed trial yet; run or resume it first."
        )
    trial, choice = recommended
    return best_config_from_trial(snapshot, trial, rule=choice.rule)


def best_config_from_trial(
    snapshot: StudySnapshot, trial: FrozenTrial, *, rule: str = "argmin"
) -> BestConfig:
    context = snapshot.context
    params = trial.params
    record = record_of(trial)
    lr = float(record.effective_lr if math.isfinite(record.effective_lr) else params["lr"])
    name = params["optimizer"]
    kwargs = OPTIMIZERS[name].torch_kwargs(
        weight_decay=params.get("weight_decay"), momentum=params.get("momentum")
    )
    scaling = context.get("lr_scaling")
    return BestConfig(
        lr_scaling=None
        if scaling is None
        else {
            "rule": resolve_rule(scaling["rule"], name),
            "reference_batch_size": scaling["reference_batch_size"],
            "base_lr": float(params["lr"]),
            "full_batch_size": context["full_batch_size"],
        },
        batch_size=params["batch_size"],
        lr=lr,
        optimizer=name,
        optimizer_kwargs=kwargs,
        schedule=context["schedule"],
        model=context["model"],
        input_shape=context.get("input_shape"),
        n_outputs=context.get("n_outputs"),
        loss=context.get("loss"),
        metric=context.get("metric"),
        preprocessing=context.get("preprocessing"),
        provenance=Provenance(
            study=snapshot.name,
            trial_number=trial.number,
            cv_val_loss=cv_loss(trial),
            cv_val_loss_std=record.cv_val_loss_std,
            metric_name=record.metric_name,
            cv_metric=record.cv_metric,
            cv_metric_std=record.cv_metric_std,
            n_folds=context["n_folds"],
            epochs=context["schedule"]["epochs"],
            seed=context["seed"],
            dataset=context["dataset"],
            data_fingerprint=context["data_fingerprint"],
            versions=library_versions(),
            selection_rule=rule,
            argmin_trial_number=argmin_trial(snapshot.trials).number,
        ),
    )
