"""One rule for study names: --study in run, worker, best and report, run_sweep(study=) and the
YAML name all refuse a path, a leading dot or 5,000 characters, with exit 2 and nothing made."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_spaces import SpaceError, load_space
from search_spaces.spec import is_study_name
from sweep.api import run_sweep
from sweep.cli import main
from sweep.errors import UsageError
from tests.conftest import write_space

BAD_NAMES = {
    "parent-escape": "../../../escape7",
    "absolute": "/tmp/somewhere/else",
    "inner-slash": "a/b",
    "leading-dot": ".hidden",
    "trailing-newline": "name\n",
    "5000-characters": "a" * 5000,
    "65-characters": "a" * 65,
    "space": "my study",
    "empty": "",
}
GOOD_NAMES = ["a", "quick", "my_study-2.v3", "A" * 64, "0day"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_the_rule_accepts_plain_names(name: str) -> None:
    assert is_study_name(name)


@pytest.mark.parametrize("name", sorted(BAD_NAMES.values()), ids=sorted(BAD_NAMES))
def test_the_rule_refuses_paths_dots_and_long_names(name: str) -> None:
    assert not is_study_name(name)


COMMANDS = {
    "run": ["run", "--space", "quick"],
    "worker": ["worker"],
    "best": ["best"],
    "report": ["report"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", ["parent-escape", "absolute", "5000-characters"])
def test_every_command_refuses_a_bad_study_name_before_anything(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    code = main([*COMMANDS[command], "--study", BAD_NAMES[case]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"sweep {command}: error: --study ") and "is not a study name" in err
    assert err.count("\n") == 1 and len(err) < 700, err  # 5,000 characters are not echoed
    assert list(workdir.iterdir()) == []  # no mlruns/, no report folder


def test_run_sweep_refuses_a_bad_study_name_naming_its_argument(workdir: Path) -> None:
    with pytest.raises(UsageError, match=r"run_sweep\(study=\.\.\.\): '\.\./x' is not a study"):
        run_sweep("quick", study="../x")
    assert list(workdir.iterdir()) == []


def test_the_yaml_name_follows_the_same_rule(tmp_path: Path) -> None:
    space = write_space(tmp_path, "named", "name: ../up\n" + load_space_text())
    with pytest.raises(SpaceError, match=r"key 'name' must be a study name matching \^"):
        load_space(str(space))


def load_space_text() -> str:
    return "dataset: {source: iris}\nsearch: {batch_size: [16], lr: [0.01], optimizer: [sgd]}\n"
