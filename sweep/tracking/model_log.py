"""A refitted model on the study's parent run: an MLflow PyTorch model in the ``pt2`` format
(``torch.export``: ``mlflow.pytorch.load_model`` reads it without unpickling code) and the plain
state dict (tensors only, for ``torch.load(..., weights_only=True)``).

Example:
    >>> logged = log_refit(tracking_uri, parent_run_id, fitted, state_file, example, losses)
    >>> logged.model_uri  # "models:/m-..." for mlflow.pytorch.load_model
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sweep.tracking.mlflow_writer import cap_mlflow_http_retries

STATE_DICT_FOLDER = "refit"  # artifact folder of the state dict on the parent run
MODEL_NAME = "refit_model"  # the logged model's name, as the UI's "Logged models" shows it


@dataclass(frozen=True)
class LoggedRefit:
    state_dict_uri: str  # runs:/<parent>/refit/<file>
    model_uri: str | None  # for mlflow.pytorch.load_model; None when torch.export refused
    export_error: str | None  # why there is no MLflow model, when there is none


def parent_run_exists(tracking_uri: str, parent_run_id: str) -> bool:
    """Whether the tracking store holds the study's parent run (checked before a refit trains)."""
    cap_mlflow_http_retries()  # a lost server answers within the writer's budget, not minutes
    try:
        MlflowClient(tracking_uri).get_run(parent_run_id)
    except MlflowException:
        return False
    return True


def log_refit(
    tracking_uri: str,
    parent_run_id: str,
    model: object,
    state_file: Path,
    example: np.ndarray,
    train_loss: np.ndarray,
) -> LoggedRefit:
    """Log ``model`` (a ``torch.nn.Module`` in eval mode) and its saved state dict to the parent
    run, with its training-loss curve as ``refit_train_loss``. The run's status is kept."""
    client = MlflowClient(tracking_uri)
    status = client.get_run(parent_run_id).info.status
    client.log_artifact(parent_run_id, str(state_file), STATE_DICT_FOLDER)
    client.log_batch(
        parent_run_id,
        metrics=[
            Metric("refit_train_loss", float(value), 0, step)
            for step, value in enumerate(train_loss, start=1)
        ],
    )
    mlflow.set_tracking_uri(tracking_uri)
    model_uri, error = None, None
    # MLflow's own loggers would print a requirements warning (the +cpu label) per call.
    logging.getLogger("mlflow.utils.requirements_utils").setLevel(logging.ERROR)
    with mlflow.start_run(run_id=parent_run_id):
        try:
            info = mlflow.pytorch.log_model(
                model,
                name=MODEL_NAME,
                serialization_format="pt2",
                input_example=example,
                pip_requirements=[f"torch=={version('torch').split('+')[0]}"],
            )
            model_uri = info.model_uri
        except Exception as err:  # noqa: BLE001 - torch.export refuses some modules; say why
            error = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    client.set_terminated(parent_run_id, status=status)
    return LoggedRefit(
        state_dict_uri=f"runs:/{parent_run_id}/{STATE_DICT_FOLDER}/{state_file.name}",
        model_uri=model_uri,
        export_error=error,
    )
