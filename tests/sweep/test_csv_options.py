"""dataset.categorical and dataset.missing from the YAML to the loaded data, the study's identity
and a whole sweep on a CSV file with a text column and an empty cell."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from search_spaces import load_space
from search_spaces.spec_io import spec_from_dict, spec_to_dict
from sweep.commands.checks import load_inputs
from sweep.commands.run import RunOptions, run_sweep
from sweep.errors import UsageError
from sweep.study.attrs import CONTEXT_ATTR, SPACE_FINGERPRINT_ATTR, SPEC_ATTR
from sweep.study.resume import space_fingerprint
from tests.conftest import local_tracking_uri, write_space
from trainers.data import load_dataset

STORAGE = "sqlite:///mlruns/optuna.db"
COLORS = ("red", "green", "blue")


def write_csv(folder: Path, *, rows: int = 30, empty_row: int | None = 4) -> Path:
    """A regression table with a text column ``color``; row ``empty_row`` has no ``size``."""
    lines = ["color,size,price"]
    for i in range(rows):
        size = "" if i == empty_row else f"{i % 7 + 0.5}"
        lines.append(f"{COLORS[i % 3]},{size},{i * 1.5 + 0.25}")
    path = folder / "houses.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def csv_space(folder: Path, *, options: str = "categorical: onehot, missing: drop_rows") -> Path:
    return write_space(
        folder,
        "houses",
        f"""
dataset: {{source: houses.csv, target: price, {options}}}
model: {{hidden: [8]}}
cv: {{folds: 3, seed: 0}}
training: {{epochs: 2, device: cpu}}
search:
  batch_size: [8, full]
  lr: {{low: 0.001, high: 0.1}}
  optimizer: [sgd, adam]
sampler: {{name: random, seed: 0}}
pruner: none
budget: {{trials: 2}}
""",
    )


def _with_dataset(spec, **changes):
    return dataclasses.replace(spec, dataset=dataclasses.replace(spec.dataset, **changes))


# -- the study's identity ----------------------------------------------------------------------


def test_the_options_at_error_keep_the_fingerprint_and_opting_in_changes_it() -> None:
    spec = load_space("quick")
    assert space_fingerprint(spec) == "29f2b90de76bbb16"  # as stored before the keys existed
    assert space_fingerprint(load_space("default")) == "692b6ad031af99f7"
    opted = {
        space_fingerprint(_with_dataset(spec, categorical="onehot")),
        space_fingerprint(_with_dataset(spec, missing="drop_rows")),
        space_fingerprint(_with_dataset(spec, categorical="onehot", missing="drop_rows")),
    }
    assert len(opted) == 3 and space_fingerprint(spec) not in opted


def test_a_stored_spec_keeps_the_options_and_an_older_one_takes_the_defaults(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path)
    spec = load_space(str(csv_space(tmp_path)))
    assert spec_from_dict(spec_to_dict(spec)) == spec
    older = spec_to_dict(load_space("quick"))
    del older["dataset"]["categorical"], older["dataset"]["missing"]
    restored = spec_from_dict(older)
    assert (restored.dataset.categorical, restored.dataset.missing) == ("error", "error")
    assert space_fingerprint(restored) == "29f2b90de76bbb16"


# -- from the space to the trials' inputs ------------------------------------------------------


def test_load_inputs_passes_the_options_to_the_loader(tmp_path: Path) -> None:
    csv = write_csv(tmp_path)
    dataset = load_inputs(load_space(str(csv_space(tmp_path)))).dataset
    assert dataset.dropped_rows == 1 and dataset.n_samples == 29
    assert dataset.feature_names == ("color=blue", "color=green", "color=red", "size")
    np.testing.assert_array_equal(dataset.X[:4, :3], [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    direct = load_dataset(str(csv), target="price", categorical="onehot", missing="drop_rows")
    assert dataset.fingerprint == direct.fingerprint


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (
            "missing: drop_rows",
            ["houses.csv", "column 'color'", "'red'", "or set dataset.categorical: onehot."],
        ),
        (
            "categorical: onehot",
            ["houses.csv", "column 'size'", "row 5", "empty cell", "dataset.missing: drop_rows"],
        ),
    ],
)
def test_without_an_option_the_sweep_stops_naming_the_file_and_the_option(
    tmp_path: Path, options: str, fragments: list[str]
) -> None:
    write_csv(tmp_path)
    spec = load_space(str(csv_space(tmp_path, options=options)))
    with pytest.raises(UsageError) as info:
        load_inputs(spec)
    message = str(info.value)
    assert message.startswith(f"{spec.path}: ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# -- a whole sweep -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_trains_on_a_csv_with_a_text_column_and_an_empty_cell(workdir: Path) -> None:
    csv = write_csv(workdir)
    outcome = run_sweep(RunOptions(space=str(csv_space(workdir))))
    assert outcome.trials_run == 2

    study = optuna.load_study(study_name="houses", storage=STORAGE)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    stored = study.user_attrs[SPEC_ATTR]["dataset"]
    assert (stored["categorical"], stored["missing"]) == ("onehot", "drop_rows")
    spec = load_space(str(csv_space(workdir)))
    assert study.user_attrs[SPACE_FINGERPRINT_ATTR] == space_fingerprint(spec)
    expected = load_dataset(str(csv), target="price", categorical="onehot", missing="drop_rows")
    context = study.user_attrs[CONTEXT_ATTR]
    assert context["data_fingerprint"] == expected.fingerprint
    assert context["input_shape"] == [4]  # three colours one-hot, and size

    client = MlflowClient(local_tracking_uri())
    experiment = client.get_experiment_by_name("houses")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.params["n_rows"] == "29"  # 30 rows, one dropped
    assert parent.data.params["n_features"] == "4"
    assert parent.data.params["dropped_rows"] == "1"
