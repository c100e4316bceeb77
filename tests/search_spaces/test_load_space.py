"""Tests for loading and validating search-space YAML files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import search_spaces.spec as space_spec
import trainers.data as trainer_data
from search_spaces import (
    FloatChoices,
    FloatRange,
    SpaceError,
    bundled_space_names,
    load_space,
    resolve_space_path,
)

DELETE = object()

# A small valid space; each bad case below changes one thing in it.
BASE: dict[str, Any] = {
    "dataset": {"source": "synthetic", "n_samples": 100, "n_features": 3},
    "model": {"hidden": [8], "activation": "relu", "dropout": 0.0},
    "cv": {"folds": 3, "seed": 0},
    "training": {"epochs": 2, "schedule": "none"},
    "search": {
        "batch_size": [8, "full"],
        "lr": {"low": 0.001, "high": 0.1},
        "optimizer": ["sgd", "adam"],
    },
    "sampler": {"name": "tpe", "seed": 0},
    "pruner": "none",
    "budget": {"trials": 2},
}


def patched(changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with dotted keys set (or removed, with DELETE)."""
    raw = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return raw


def write_yaml(tmp_path: Path, raw: object, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


# -- bundled spaces ----------------------------------------------------------------------------


def test_bundled_names_include_documented_spaces():
    assert {"default", "seed_article", "quick"} <= set(bundled_space_names())
    assert bundled_space_names() == sorted(bundled_space_names())


@pytest.mark.parametrize("name", ["default", "seed_article", "quick"])
def test_every_bundled_space_loads_with_its_stem_as_name(name):
    spec = load_space(name)
    assert spec.name == name
    assert Path(spec.path).is_absolute() and Path(spec.path).name == f"{name}.yaml"


def test_default_space_has_documented_values():
    spec = load_space("default")
    assert spec.dataset.source == "diabetes" and spec.dataset.task == "regression"
    assert spec.model.hidden == (64,) and spec.model.activation == "relu"
    assert spec.cv.folds == 5
    assert spec.training.epochs == 15 and spec.training.schedule == "none"
    # `capture: off` unquoted is YAML's false: it still means the mode named off.
    assert (spec.training.precision, spec.training.capture) == ("fp32", "off")
    assert spec.training.threads is None  # auto
    assert spec.search.batch_size == (1, 8, 32, 128, "full")
    assert spec.search.lr == FloatRange(low=1e-4, high=3e-1, log=True)
    assert spec.search.optimizer == ("sgd", "momentum", "adam", "adamw", "rmsprop")
    assert (spec.sampler.name, spec.sampler.seed) == ("tpe", 0)
    assert spec.pruner == "median"
    assert spec.budget.trials == 20


def test_seed_article_space_is_the_full_18_point_grid():
    spec = load_space("seed_article")
    data = spec.dataset
    assert (data.source, data.n_samples, data.n_features, data.noise, data.seed) == (
        "synthetic",
        1000,
        10,
        0.5,
        0,
    )
    assert spec.model.hidden == (50,) and spec.cv.folds == 5 and spec.training.epochs == 64
    assert spec.search.batch_size == (1, 64, "full")
    assert spec.search.optimizer == ("sgd", "adam")
    assert spec.search.lr == FloatChoices(values=(0.001, 0.01, 0.1))
    assert spec.sampler.name == "grid" and spec.pruner == "none"
    grid_size = len(spec.search.batch_size) * len(spec.search.optimizer) * 3
    assert spec.budget.trials == grid_size == 18


def test_quick_space_is_small_iris_classification():
    spec = load_space("quick")
    assert (spec.dataset.source, spec.dataset.task) == ("iris", "classification")
    assert spec.cv.folds == 3 and spec.training.epochs == 5
    assert spec.search.batch_size == (8, "full") and spec.budget.trials == 4


# -- resolving names and paths -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "default.yaml"])
def test_bare_name_resolves_to_bundled_file(name):
    assert resolve_space_path(name) == resolve_space_path("default")
    assert resolve_space_path(name).parent.name == "search_spaces"


def test_path_relative_to_cwd_is_resolved(tmp_path, monkeypatch):
    write_yaml(tmp_path, BASE, "mine.yaml")
    monkeypatch.chdir(tmp_path)
    assert resolve_space_path("mine.yaml") == (tmp_path / "mine.yaml").resolve()
    assert load_space("./mine.yaml").name == "mine"


def test_unknown_name_lists_bundled_spaces_and_suggests():
    with pytest.raises(SpaceError) as info:
        resolve_space_path("defualt")
    message = str(info.value)
    assert "defualt" in message and "Did you mean 'default'?" in message
    assert all(name in message for name in bundled_space_names())


# -- defaults ----------------------------------------------------------------------------------


def test_missing_optional_sections_take_spec_defaults(tmp_path):
    raw = {"dataset": {"source": "iris"}, "search": BASE["search"]}
    spec = load_space(str(write_yaml(tmp_path, raw, "minimal.yaml")))
    assert spec.name == "minimal"
    assert spec.model.hidden == (50,) and spec.cv.folds == 5 and spec.training.epochs == 20
    assert (spec.sampler.name, spec.pruner, spec.budget.trials) == ("tpe", "median", 20)
    assert spec.search.weight_decay is None and spec.search.momentum is None


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"search.lr": {"low": "1e-4", "high": 1}}, lambda s: s.search.lr.low == 1e-4),
        ({"search.lr": {"low": 0.01, "high": 0.1, "log": False}}, lambda s: not s.search.lr.log),
        ({"cv.stratify": "auto"}, lambda s: s.cv.stratify is None),
        ({"cv.stratify": False}, lambda s: s.cv.stratify is False),
        ({"sampler": "random"}, lambda s: s.sampler.name == "random"),
        ({"sampler.seed": None}, lambda s: s.sampler.seed is None),
        ({"model.hidden": []}, lambda s: s.model.hidden == ()),
        ({"training.schedule": "step", "training.gamma": 0.5}, lambda s: s.training.gamma == 0.5),
        (
            {"search.weight_decay": {"low": 0, "high": 0.01, "log": False}},
            lambda s: s.search.weight_decay == FloatRange(0.0, 0.01, False),
        ),
        (
            {"search.optimizer": ["momentum"], "search.momentum": [0.0, 0.9]},
            lambda s: s.search.momentum == FloatChoices((0.0, 0.9)),
        ),
        ({"budget.timeout_seconds": 30}, lambda s: s.budget.timeout_seconds == 30.0),
    ],
    ids=repr,
)
def test_valid_variants_load(tmp_path, changes, check):
    assert check(load_space(str(write_yaml(tmp_path, patched(changes)))))


# -- rule violations ---------------------------------------------------------------------------

BAD_CASES = [
    # (changes to BASE, dotted key in the message, value text in the message)
    ({"name": "has space"}, "name", "'has space'"),
    ({"dataset.source": "diabetis"}, "dataset.source", "'diabetis'"),
    ({"dataset.source": DELETE}, "dataset.source", "is required"),
    ({"dataset.source": "missing.csv"}, "dataset.source", "'missing.csv'"),
    (
        {"dataset.source": "iris", "dataset.n_samples": DELETE, "dataset.n_features": 4},
        "dataset.n_features",
        "got 4",
    ),
    ({"dataset.target": "y"}, "dataset.target", "'y'"),
    ({"dataset.n_samples": 1}, "dataset.n_samples", "got 1"),
    ({"dataset.noise": -0.5}, "dataset.noise", "got -0.5"),
    ({"dataset.task": "regresion"}, "dataset.task", "'regresion'"),
    ({"model.hidden": [8, 0]}, "model.hidden", "got 0"),
    ({"model.hidden": 64}, "model.hidden", "got 64"),
    ({"model.activation": "sigmoid"}, "model.activation", "'sigmoid'"),
    ({"model.dropout": 1.0}, "model.dropout", "got 1.0."),
    ({"cv.folds": 1}, "cv.folds", "got 1."),
    ({"cv.folds": True}, "cv.folds", "got true"),
    ({"cv.stratify": "yes please"}, "cv.stratify", "'yes please'"),
    ({"cv.seed": "abc"}, "cv.seed", "'abc'"),
    ({"training.epochs": 20.0}, "training.epochs", "got 20.0."),
    ({"training.epochs": 0}, "training.epochs", "got 0"),
    ({"training.schedule": "linear"}, "training.schedule", "'linear'"),
    ({"training.step_size": 5}, "training.step_size", "got 5"),
    ({"training.schedule": "step", "training.gamma": 0}, "training.gamma", "got 0"),
    ({"training.device": "gpu"}, "training.device", "'gpu'"),
    ({"training.precision": "fp16"}, "training.precision", "'fp16'"),
    ({"training.capture": "cuda_graphs"}, "training.capture", "'cuda_graphs'"),
    ({"training.capture": True}, "training.capture", "got true"),
    ({"training.threads": 0}, "training.threads", "got 0"),
    ({"training.threads": "all"}, "training.threads", "'all'"),
    ({"search.batch_size": []}, "search.batch_size", "got []"),
    ({"search.batch_size": [8, 8]}, "search.batch_size", "[8, 8]"),
    ({"search.batch_size": [0, "full"]}, "search.batch_size", "got 0"),
    ({"search.batch_size": [8, "all"]}, "search.batch_size", "'all'"),
    ({"search.lr": DELETE}, "search.lr", "is required"),
    ({"search.lr": {"low": 0, "high": 0.1}}, "search.lr.low", "got 0"),
    ({"search.lr": {"low": 0.1, "high": 0.01}}, "search.lr.high", "got 0.01"),
    ({"search.lr": {"low": "tiny", "high": 0.1}}, "search.lr.low", "'tiny'"),
    ({"search.lr": {"low": 0.001}}, "search.lr.high", "is required"),
    ({"search.lr": [0.01, 0.01]}, "search.lr", "[0.01, 0.01]"),
    ({"search.lr": [0.01, -0.1]}, "search.lr", "got -0.1"),
    ({"search.lr": 0.01}, "search.lr", "got 0.01"),
    ({"search.optimizer": ["sgd", "adamm"]}, "search.optimizer", "'adamm'"),
    ({"search.optimizer": "adam"}, "search.optimizer", "'adam'"),
    ({"search.weight_decay": {"low": 0, "high": 0.01}}, "search.weight_decay.low", "got 0"),
    ({"search.weight_decay": [-0.1]}, "search.weight_decay", "got -0.1"),
    ({"search.momentum": [0.9]}, "search.momentum", "[0.9]"),
    (
        {"search.optimizer": ["momentum"], "search.momentum": [0.5, 1.0]},
        "search.momentum",
        "got 1.0.",
    ),
    ({"sampler.name": "bayes"}, "sampler.name", "'bayes'"),
    ({"sampler.seed": 1.5}, "sampler.seed", "got 1.5"),
    ({"sampler": ["tpe"]}, "sampler", "['tpe']"),
    ({"pruner": "never"}, "pruner", "'never'"),
    ({"budget.trials": 0}, "budget.trials", "got 0"),
    ({"budget.timeout_seconds": -1}, "budget.timeout_seconds", "got -1"),
    ({"cv": [5]}, "cv", "got [5]"),
]


@pytest.mark.parametrize(("changes", "key", "value_text"), BAD_CASES, ids=repr)
def test_each_rule_violation_names_file_key_and_value(tmp_path, changes, key, value_text):
    path = write_yaml(tmp_path, patched(changes), "bad_space.yaml")
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    error = info.value
    message = str(error)
    assert "bad_space.yaml" in message
    assert f"'{key}'" in message and error.key == key
    assert value_text in message
    assert error.source.endswith("bad_space.yaml") and not error.from_flag


def test_message_format_matches_documented_example(tmp_path):
    path = write_yaml(tmp_path, patched({"cv.folds": 1}))
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    assert str(info.value).endswith(
        "space.yaml: key 'cv.folds' must be an integer >= 2, got 1. Set cv.folds to 2 or more."
    )
    assert (info.value.rule, info.value.value) == ("must be an integer >= 2", 1)


@pytest.mark.parametrize(
    ("changes", "key", "suggestion"),
    [
        ({"cv.fold": 3}, "cv.fold", "Did you mean 'folds'?"),
        ({"search.learning_rate": [0.1]}, "search.learning_rate", "Known keys in 'search'"),
        ({"search.lr.lwo": 0.001}, "search.lr.lwo", "Did you mean 'low'?"),
        ({"epochs": 5}, "epochs", "Did you mean 'training.epochs'?"),
        ({"budgit": {"trials": 2}}, "budgit", "Did you mean 'budget'?"),
    ],
)
def test_unknown_key_is_rejected_with_suggestion(tmp_path, changes, key, suggestion):
    with pytest.raises(SpaceError, match="is not a known setting") as info:
        load_space(str(write_yaml(tmp_path, patched(changes))))
    assert info.value.key == key and suggestion in str(info.value)


def test_grid_sampler_requires_lists_for_float_params(tmp_path):
    path = write_yaml(tmp_path, patched({"sampler.name": "grid"}))
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    assert info.value.key == "search.lr"
    assert "the grid sampler needs a list of values for search.lr, e.g. lr: [0.001, 0.01]" in (
        str(info.value)
    )


def test_grid_sampler_accepts_lists(tmp_path):
    spec = load_space(str(write_yaml(tmp_path, patched({"sampler": "grid", "search.lr": [0.1]}))))
    assert spec.sampler.name == "grid"


# -- whole-file problems -----------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("cv:\n  folds: 3\n  seed: [0\ntraining: {}\n", encoding="utf-8")
    with pytest.raises(SpaceError, match=r"broken\.yaml: is not valid YAML at line \d+"):
        load_space(str(path))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "is empty"), ("# only a comment\n", "is empty"), ("- a\n- b\n", "mapping")],
)
def test_empty_or_non_mapping_file_is_rejected(tmp_path, text, fragment):
    path = tmp_path / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpaceError, match=fragment) as info:
        load_space(str(path))
    assert "odd.yaml" in str(info.value)


def test_duplicate_key_is_rejected(tmp_path):
    path = tmp_path / "dup.yaml"
    text = yaml.safe_dump(BASE, sort_keys=False).replace("  folds: 3\n", "  folds: 3\n  folds: 4\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpaceError, match="written twice") as info:
        load_space(str(path))
    assert info.value.key == "cv.folds"


# -- CSV sources -------------------------------------------------------------------------------


def test_csv_source_is_resolved_relative_to_the_yaml_file(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    raw = patched({"dataset": {"source": "../data/train.csv", "target": "y"}})
    path = write_yaml(spaces, raw)
    monkeypatch.chdir(spaces.parent.parent)  # somewhere else entirely
    spec = load_space(str(path))
    assert spec.dataset.source == str((tmp_path / "data" / "train.csv").resolve())
    assert spec.dataset.target == "y"


def test_csv_source_requires_target(tmp_path):
    (tmp_path / "train.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    path = write_yaml(tmp_path, patched({"dataset": {"source": "train.csv"}}))
    with pytest.raises(SpaceError, match="dataset.target' is required for a CSV file"):
        load_space(str(path))


# -- command-line overrides --------------------------------------------------------------------


def test_override_replaces_file_value():
    spec = load_space("default", overrides={"budget.trials": ("--trials", 5)})
    assert spec.budget.trials == 5


def test_override_fixes_an_invalid_file_value(tmp_path):
    path = write_yaml(tmp_path, patched({"cv.folds": 1}))
    spec = load_space(str(path), overrides={"cv.folds": ("--folds", "4")})
    assert spec.cv.folds == 4


@pytest.mark.parametrize(
    ("key", "flag", "value", "expected"),
    [
        (
            "budget.trials",
            "--trials",
            0,
            "--trials (budget.trials) must be an integer >= 1, got 0.",
        ),
        ("training.epochs", "--epochs", "zero", "--epochs (training.epochs) must be an integer"),
        ("cv.seed", "--cv-seed", -1, "--cv-seed (cv.seed) must be an integer >= 0, got -1."),
        ("sampler.seed", "--seed", "1.5", "--seed (sampler.seed) must be an integer >= 0, got 1.5"),
        ("dataset.source", "--data", "nope", "--data (dataset.source) must be one of"),
        ("name", "--study", "bad name!", "--study (name) must be a study name"),
    ],
)
def test_bad_override_names_the_flag_not_the_file(key, flag, value, expected):
    with pytest.raises(SpaceError) as info:
        load_space("default", overrides={key: (flag, value)})
    message = str(info.value)
    assert message.startswith(expected)
    assert "default.yaml" not in message
    assert info.value.from_flag and info.value.source == flag and info.value.key == key


def test_string_overrides_stay_strings_for_text_settings():
    spec = load_space("default", overrides={"name": ("--study", "2024")})
    assert spec.name == "2024"


def test_sampler_seed_override_expands_bare_sampler_name(tmp_path):
    path = write_yaml(tmp_path, patched({"sampler": "random"}))
    spec = load_space(str(path), overrides={"sampler.seed": ("--seed", "7")})
    assert (spec.sampler.name, spec.sampler.seed) == ("random", 7)


def test_csv_override_is_resolved_relative_to_cwd(tmp_path, monkeypatch):
    (tmp_path / "here.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    spec = load_space(
        "quick",
        overrides={"dataset.source": ("--data", "here.csv"), "dataset.target": ("--target", "b")},
    )
    assert spec.dataset.source == str((tmp_path / "here.csv").resolve())
    assert spec.dataset.target == "b"


# -- the exception itself ----------------------------------------------------------------------


def test_space_error_is_a_value_error_with_its_parts():
    error = SpaceError("f.yaml", "cv.folds", "must be an integer >= 2", 1, "Set it.")
    assert isinstance(error, ValueError)
    assert (error.source, error.key, error.value) == ("f.yaml", "cv.folds", 1)
    assert str(error) == "f.yaml: key 'cv.folds' must be an integer >= 2, got 1. Set it."


def test_source_override_replaces_the_files_dataset_section():
    spec = load_space("seed_article", overrides={"dataset.source": ("--data", "iris")})
    assert spec.dataset.source == "iris"
    assert spec.dataset.task == "auto" and spec.dataset.noise == 0.1  # spec defaults again


def test_float_for_integer_setting_is_shown_as_written(tmp_path):
    with pytest.raises(SpaceError, match=r"got 20\.0\. Write it without a decimal point: 20\."):
        load_space(str(write_yaml(tmp_path, patched({"training.epochs": 20.0}))))


def test_csv_override_without_target_names_the_flag(tmp_path, monkeypatch):
    (tmp_path / "here.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match=r"^--data \(dataset.target\) is required for a CSV"):
        load_space("quick", overrides={"dataset.source": ("--data", "here.csv")})


# -- CSV options: dataset.categorical and dataset.missing --------------------------------------


def _csv_space(tmp_path: Path, **dataset: object) -> Path:
    (tmp_path / "train.csv").write_text("color,x,y\nred,1,0\n,2,1\n", encoding="utf-8")
    return write_yaml(
        tmp_path, patched({"dataset": {"source": "train.csv", "target": "y", **dataset}})
    )


def test_csv_options_default_to_error(tmp_path):
    csv = load_space(str(_csv_space(tmp_path)))
    named = load_space(str(write_yaml(tmp_path, BASE, "named.yaml")))
    for spec in (csv, named):
        assert (spec.dataset.categorical, spec.dataset.missing) == ("error", "error")


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"categorical": "onehot"}, ("onehot", "error")),
        ({"missing": "drop_rows"}, ("error", "drop_rows")),
        ({"categorical": "onehot", "missing": "drop_rows"}, ("onehot", "drop_rows")),
        ({"categorical": "error", "missing": "error"}, ("error", "error")),
    ],
)
def test_csv_options_load_for_a_csv_file(tmp_path, dataset, expected):
    spec = load_space(str(_csv_space(tmp_path, **dataset)))
    assert (spec.dataset.categorical, spec.dataset.missing) == expected


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        (
            "categorical",
            "one_hot",
            ["must be one of error, onehot", "got 'one_hot'", "Did you mean 'onehot'?"],
        ),
        (
            "missing",
            "drop",
            ["must be one of error, drop_rows", "got 'drop'", "Did you mean 'drop_rows'?"],
        ),
        ("missing", True, ["must be one of error, drop_rows", "got true"]),
    ],
)
def test_csv_options_refuse_unknown_values(tmp_path, key, value, fragments):
    with pytest.raises(SpaceError) as info:
        load_space(str(_csv_space(tmp_path, **{key: value})))
    message = str(info.value)
    assert info.value.key == f"dataset.{key}" and info.value.value == value
    assert f"space.yaml: key 'dataset.{key}' must be one of" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(
    ("key", "value"), [("categorical", "onehot"), ("missing", "drop_rows"), ("missing", "error")]
)
@pytest.mark.parametrize("source", ["synthetic", "iris"])
def test_named_datasets_refuse_the_csv_options(tmp_path, source, key, value):
    raw = patched({"dataset": {"source": source, key: value}})
    with pytest.raises(SpaceError) as info:
        load_space(str(write_yaml(tmp_path, raw, "bad_space.yaml")))
    message = str(info.value)
    assert info.value.key == f"dataset.{key}" and info.value.value == value
    assert "bad_space.yaml" in message
    assert (
        f"key 'dataset.{key}' only applies to CSV files, not to the named dataset '{source}'"
        in message
    )
    assert f"got '{value}'" in message and "Remove it" in message


@pytest.mark.parametrize(("key", "value"), [("categorical", "onehot"), ("missing", "drop_rows")])
def test_a_data_factory_refuses_the_csv_options(tmp_path, key, value):
    (tmp_path / "my_data.py").write_text(
        "def load():\n    return [[0.0]], [0.0]\n", encoding="utf-8"
    )
    raw = patched({"dataset": {"factory": "my_data.py:load", key: value}})
    with pytest.raises(SpaceError) as info:
        load_space(str(write_yaml(tmp_path, raw, "bad_space.yaml")))
    message = str(info.value)
    assert info.value.key == f"dataset.{key}" and info.value.value == value
    assert "bad_space.yaml" in message
    assert f"key 'dataset.{key}' only applies to CSV files, not with dataset.factory" in message
    assert f"got '{value}'" in message and "Remove it" in message


def test_csv_option_overrides_stay_strings(tmp_path):
    # "no" would be read as false; a text setting keeps what was typed, and names the flag
    with pytest.raises(SpaceError) as info:
        load_space(str(_csv_space(tmp_path)), overrides={"dataset.missing": ("--missing", "no")})
    assert str(info.value).startswith(
        "--missing (dataset.missing) must be one of error, drop_rows, got 'no'."
    )
    spec = load_space(
        str(_csv_space(tmp_path)), overrides={"dataset.categorical": ("--categorical", "onehot")}
    )
    assert spec.dataset.categorical == "onehot"


def test_csv_option_names_match_the_trainers():
    assert space_spec.CATEGORICAL_MODES == trainer_data.CATEGORICAL_MODES
    assert space_spec.MISSING_MODES == trainer_data.MISSING_MODES


@pytest.mark.parametrize(("value", "expected"), [("auto", None), (3, 3)])
def test_training_threads_is_auto_or_a_count(value, expected):
    spec = load_space("quick", overrides={"training.threads": ("--threads", value)})
    assert spec.training.threads == expected
