"""``sweep refit --study NAME``: the study's recommended config trained once more on every row,
saved as a state dict (tensors only) and logged to the study's parent MLflow run.

Cross-validation measured the config through k models that each missed a fold; this is the one
model to keep. Load it back with ``load_best_config(NAME).load_model(PATH)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sweep.commands.checks import check_storage_url, check_tracking_uri, load_inputs
from sweep.commands.terminal import say
from sweep.errors import UsageError
from sweep.guards.safe_files import check_output_file, write_atomically

MODEL_SUFFIXES = (".pt", ".pth")


@dataclass(frozen=True)
class RefitOutcome:
    path: Path  # the state dict on disk
    train_loss: list[float]  # per epoch
    engine: str
    state_dict_uri: str | None  # on the parent run, None when the study has no parent run
    model_uri: str | None  # for mlflow.pytorch.load_model, None when not logged
    export_error: str | None


def default_model_path(study_name: str) -> Path:
    return Path("mlruns") / "models" / f"{study_name}.pt"


def check_output(output: Path) -> None:
    """``-o`` names a file to (over)write: refused before anything trains."""
    if output.suffix not in MODEL_SUFFIXES:
        raise UsageError(
            f"-o {output}: a state dict file must end in .pt or .pth; got {output.suffix or 'none'}."
        )
    check_output_file(output, flag="-o")


def run_refit(
    study_name: str, *, storage_url: str, tracking_uri: str, output: Path | None
) -> RefitOutcome:
    import optuna  # Optuna and torch load once the arguments are known to be usable

    from sweep.report.export import best_config_from_trial
    from sweep.report.selection import recommended_trial
    from sweep.report.snapshot import snapshot_of
    from sweep.study.attrs import PARENT_RUN_ATTR
    from sweep.study.resume import load_spec, make_storage
    from sweep.study.trial_params import train_config

    path = output or default_model_path(study_name)
    check_output(path)
    check_storage_url(storage_url)
    check_tracking_uri(tracking_uri)
    spec = load_spec(storage_url, study_name)
    inputs = load_inputs(spec)
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    snapshot = snapshot_of(study)
    chosen = recommended_trial(snapshot.trials)
    if chosen is None:
        raise UsageError(f"--study {study_name!r} has no completed trial yet; nothing to refit.")
    trial, choice = chosen
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent_run_id:
        _check_parent_run(tracking_uri, parent_run_id, study_name)
    best = best_config_from_trial(snapshot, trial, rule=choice.rule)
    n_rows = int(inputs.dataset.X.shape[0])
    config = train_config(trial.params, spec, full_batch_size=n_rows)
    say(
        f"refit: trial {trial.number} ({choice.rule}): batch {best.batch_size}, {best.optimizer} "
        f"lr {config.optimizer.lr:.3g}, {config.epochs} epochs on all {n_rows} rows"
    )
    fitted = _train(inputs, config)
    _save(fitted.model, path)
    say(
        f"wrote {path} (state dict; load it with load_best_config({study_name!r}).load_model(path))"
    )
    logged = None
    if parent_run_id:
        from sweep.tracking.model_log import log_refit  # MLflow: only once the model exists

        example = inputs.dataset.X[:2]
        logged = log_refit(
            tracking_uri, parent_run_id, fitted.model, path, example, fitted.train_loss
        )
        if logged.model_uri is not None:
            say(
                f"logged to MLflow run {parent_run_id}: {logged.model_uri} and {logged.state_dict_uri}"
            )
        else:
            say(
                f"logged the state dict to MLflow run {parent_run_id} ({logged.state_dict_uri}); "
                f"torch.export could not export the module, so there is no MLflow model: "
                f"{logged.export_error}"
            )
    return RefitOutcome(
        path=path,
        train_loss=[float(v) for v in fitted.train_loss],
        engine=fitted.engine,
        state_dict_uri=None if logged is None else logged.state_dict_uri,
        model_uri=None if logged is None else logged.model_uri,
        export_error=None if logged is None else logged.export_error,
    )


def _check_parent_run(tracking_uri: str, parent_run_id: str, study_name: str) -> None:
    """The model goes to the study's parent run: that run must be in the tracking store, and a
    SQLite store that does not exist is not created."""
    from sweep.locations import sqlite_path
    from sweep.provenance.redact import redact_url

    db_file = sqlite_path(tracking_uri)
    missing = db_file is not None and not db_file.is_file()
    if not missing:
        from sweep.tracking.model_log import parent_run_exists  # MLflow: the input is valid so far

        missing = not parent_run_exists(tracking_uri, parent_run_id)
    if missing:
        raise UsageError(
            f"--tracking-uri {redact_url(tracking_uri)}: study {study_name!r} logged to parent run "
            f"{parent_run_id}, which is not in this tracking store. Pass the --tracking-uri "
            "(or MLFLOW_TRACKING_URI) the sweep used."
        )


def _train(inputs, config):  # noqa: ANN001, ANN202 - torch types stay off the import path
    from trainers.refit import refit_model
    from trainers.train_config import TrainingDiverged

    started = time.perf_counter()
    every = max(1, config.epochs // 10)

    def progress(epoch: int, loss: float) -> None:
        if epoch % every == 0 or epoch == config.epochs:
            say(f"  epoch {epoch}/{config.epochs}: train loss {loss:.4g}")

    try:
        fitted = refit_model(
            inputs.dataset,
            inputs.model,
            config,
            device=inputs.device,
            loss=inputs.loss,
            metric=inputs.metric,
            standardize=inputs.standardize,
            on_epoch=progress,
        )
    except TrainingDiverged as err:
        raise UsageError(
            f"refit: the loss turned non-finite ({err}); the config that was stable on the "
            "folds diverged on all the rows. Lower the learning rate, or refit another trial."
        ) from err
    say(f"refit: trained in {time.perf_counter() - started:.1f} s on the {fitted.engine} engine")
    return fitted


def _save(model, path: Path) -> None:  # noqa: ANN001 - torch stays off the import path
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomically(path, buffer.getvalue())
