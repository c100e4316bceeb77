"""The Optuna side: storage, sampler, pruner, and creating or resuming a study."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from typing import Any

import optuna

from search_spaces.spec import SweepSpec
from search_spaces.spec_io import spec_from_dict, spec_to_dict
from sweep.errors import UsageError
from sweep.locations import sqlite_path
from sweep.provenance.redact import redact_url
from sweep.study.attrs import (
    BUDGET_ATTR,
    CONTEXT_ATTR,
    COUNTED_STATES,
    SPACE_FINGERPRINT_ATTR,
    SPEC_ATTR,
)
from sweep.study.creation_lock import creation_lock
from sweep.study.trial_params import grid_search_space

# A worker records a heartbeat this often; one silent for 3x as long is taken for dead.
HEARTBEAT_SECONDS = int(os.environ.get("SWEEP_HEARTBEAT_SECONDS", "60"))


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """RDB storage with heartbeats, so a dead worker's trial is failed and retried, not stuck."""
    db_file = sqlite_path(url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    # Creating the tables of a new database is not safe from two processes at once.
    with creation_lock(url), warnings.catch_warnings():
        # Heartbeats have been "experimental" since Optuna 2.9; they are what we rely on.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"connect_args": {"timeout": 30}} if db_file is not None else None,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=3 * HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=2
            ),
        )


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    seed = spec.sampler.seed
    name = spec.sampler.name
    if name == "tpe":
        # group=True: momentum is only asked for the optimizers that use it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _AskTellGridSampler(grid_search_space(spec.search), seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "cmaes":
        # CMA-ES handles the float parameters; batch size and optimizer are sampled at random.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise AssertionError(f"sampler {name!r} passed validation but has no factory")


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose after_trial does not call ``study.stop()``, which only works inside
    ``study.optimize``; our ask/tell loop caps the budget at the grid's size instead."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001 - Optuna's signature
        return None


def grid_size(spec: SweepSpec) -> int:
    """Number of points of the grid sampler's table."""
    size = 1
    for values in grid_search_space(spec.search).values():
        size *= len(values)
    return size


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    epochs = spec.training.epochs
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 4))
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()


def space_fingerprint(spec: SweepSpec) -> str:
    """What makes two trials comparable: data, model, CV, training and search, not the budget."""
    comparable = dataclasses.asdict(spec)
    for key in ("name", "path", "budget"):
        comparable.pop(key)
    comparable["training"].pop("device")
    comparable["training"].pop("capture")  # how a step runs, not what it computes
    comparable["training"].pop("threads")
    # Keys at the defaults they had before they existed are left out, so older studies resume.
    if comparable["training"]["precision"] == "fp32":
        comparable["training"].pop("precision")
    for key in ("categorical", "missing"):
        if comparable["dataset"][key] == "error":
            comparable["dataset"].pop(key)
    for section in ("dataset", "model"):
        if comparable[section]["factory"] is None and not comparable[section]["kwargs"]:
            del comparable[section]["factory"], comparable[section]["kwargs"]
    for key, default in (
        ("loss", "auto"),
        ("metric", "auto"),
        ("preprocess", {"standardize": "auto"}),
    ):
        if comparable[key] == default:
            comparable.pop(key)
    comparable["sampler"].pop("seed")
    text = json.dumps(comparable, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_resumable(
    storage_url: str, study_name: str, spec: SweepSpec
) -> tuple[bool, optuna.storages.BaseStorage | None]:
    """Whether the study exists (made by the same space: raises UsageError if not), and the
    storage it opened to read it, for :func:`open_study` to use again (None when there was no
    database to open).

    Reads only: a missing SQLite file is not created here.
    """
    db_file = sqlite_path(storage_url)
    if db_file is not None and not db_file.exists():
        return False, None
    storage = make_storage(storage_url)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return False, storage
    stored = storage.get_study_user_attrs(study_id).get(SPACE_FINGERPRINT_ATTR)
    if stored is not None and stored != space_fingerprint(spec):
        raise UsageError(
            f"--study {study_name!r}: the study in {redact_url(storage_url)} was created from a different search "
            f"space, data set, model or training setting (fingerprint {stored}, now "
            f"{space_fingerprint(spec)}). Trials of the two would not be comparable. Use a new "
            f"--study name, or rerun with the settings it was created with."
        )
    return True, storage


def open_study(
    spec: SweepSpec,
    *,
    study_name: str,
    storage_url: str,
    context: dict[str, Any],
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Create the study, or load it to resume; its user attrs hold what export needs.
    ``storage``: one already opened on ``storage_url`` (opening one costs a schema check)."""
    study = optuna.create_study(
        storage=storage or make_storage(storage_url),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        study_name=study_name,
        directions=["minimize"] * len(spec.objectives),
        load_if_exists=True,
    )
    if SPACE_FINGERPRINT_ATTR not in study.user_attrs:
        study.set_user_attr(SPACE_FINGERPRINT_ATTR, space_fingerprint(spec))
        study.set_user_attr(CONTEXT_ATTR, context)
    stored = study.user_attrs.get(SPEC_ATTR)
    # A joining worker needs no YAML. A resume may change the budget; a worker's own sampler
    # seed and device stay its own.
    if stored is None or stored["budget"] != spec_to_dict(spec)["budget"]:
        study.set_user_attr(SPEC_ATTR, spec_to_dict(spec))
        study.set_user_attr(BUDGET_ATTR, spec.budget.trials)
    return study


def load_spec(storage_url: str, study_name: str) -> SweepSpec:
    """The spec a study was created (or last resumed) with; raises UsageError if none."""
    db_file = sqlite_path(storage_url)
    if db_file is not None and not db_file.exists():
        raise UsageError(
            f"--storage {redact_url(storage_url)}: no such database; create the study with `sweep run`."
        )
    storage = make_storage(storage_url)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError as err:
        names = [s.study_name for s in storage.get_all_studies()]
        raise UsageError(
            f"--study {study_name!r} does not exist in {redact_url(storage_url)}; studies there: "
            f"{', '.join(names) or 'none'}. Create it with `sweep run --study {study_name} ...`."
        ) from err
    stored = storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
    if stored is None:
        raise UsageError(f"--study {study_name!r} was not created by batchsweep (no stored spec).")
    return spec_from_dict(stored)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward the budget: COMPLETE and PRUNED (FAILED ones are retried)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED_STATES))
