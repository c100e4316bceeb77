"""What MLflow's own fluent API would attach to a run, for the runs the sink creates: the run
context tags (user, source, git commit), the data as a dataset input, and the space's YAML.

The sink writes the tags with each run it creates (no extra request), the dataset input with one
``log_inputs`` per run, and the YAML once, on the study's run.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import DatasetInput, InputTag

from sweep.provenance.dataset_facts import DatasetFacts
from sweep.provenance.run_context import run_context_tags

DATASET_CONTEXT_TAG = "mlflow.data.context"  # what the UI shows beside the dataset's name
SPACE_ARTIFACT_DIR = "space"  # the space's YAML, under the study run's artifacts


@dataclass(frozen=True)
class RunContext:
    """What every run of a study gets besides its own values."""

    tags: Mapping[str, str] = field(default_factory=dict)
    dataset: DatasetInput | None = None
    space_file: Path | None = None  # logged on the study's run only


def run_context(
    dataset: DatasetFacts | None, *, space_file: str | Path | None = None
) -> RunContext:
    """The run context of this process, ``dataset`` as an MLflow dataset input, and the space's
    YAML when ``space_file`` is a file."""
    space = Path(space_file) if space_file else None
    return RunContext(
        tags=run_context_tags(),
        dataset=None if dataset is None else dataset_input(dataset),
        space_file=space if space is not None and space.is_file() else None,
    )


def dataset_input(dataset: DatasetFacts, *, context: str = "training") -> DatasetInput:
    """``dataset`` as MLflow records a dataset: built by ``mlflow.data.from_numpy`` from arrays
    of the data's shapes and dtypes (its profile and schema; MLflow reads no value when it is
    given the digest), with the sweep's data fingerprint as its digest and the CSV path or the
    set's name as its source."""
    # its schema inference loads more of MLflow: only for a sweep's runs
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource

    name = Path(dataset.name).name if dataset.name.endswith(".csv") else dataset.name
    features, targets = dataset.stand_ins()
    described = {"targets": targets, "name": name, "digest": dataset.fingerprint}
    with warnings.catch_warnings():
        # MLflow registers two local sources and warns that it picks the first: either will do.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        try:  # a CSV path or a set's name: MLflow takes it for a local file
            numpy_dataset = mlflow.data.from_numpy(features, source=dataset.name, **described)
        except Exception:  # noqa: BLE001 - "python:fn", "file.py:fn": a user's data function
            source = CodeDatasetSource(tags={"mlflow.source.name": dataset.name})
            numpy_dataset = mlflow.data.from_numpy(features, source=source, **described)
    entity = numpy_dataset._to_mlflow_entity()
    return DatasetInput(dataset=entity, tags=[InputTag(DATASET_CONTEXT_TAG, context)])
