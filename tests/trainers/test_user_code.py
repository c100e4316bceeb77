"""Tests for trainers.user_code: loading a user's function from a file or a module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trainers.user_code import UserCodeError, load_callable


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


def test_loads_a_function_from_a_file(tmp_path):
    path = write(tmp_path, "models.py", "def double(x):\n    return 2 * x\n")
    double = load_callable(f"{path}:double")
    assert double(21) == 42
    assert double.__module__.startswith("batchsweep_user_models_")
    assert sys.modules[double.__module__].__file__ == str(path)


def test_a_second_load_of_a_file_reuses_its_module(tmp_path):
    path = write(
        tmp_path, "counter.py", "LOADS = []\nLOADS.append(1)\ndef f():\n    return LOADS\n"
    )
    first, second = load_callable(f"{path}:f"), load_callable(f"{path}:f")
    assert first is second
    assert first() == [1]  # executed once


def test_files_of_one_name_in_two_folders_are_two_modules(tmp_path):
    paths = []
    for folder, value in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        paths.append(write(tmp_path / folder, "m.py", f"def f():\n    return {value}\n"))
    assert [load_callable(f"{path}:f")() for path in paths] == [1, 2]


def test_a_file_imports_its_siblings_and_sys_path_is_restored(tmp_path):
    write(tmp_path, "helpers_for_user_code.py", "WIDTH = 7\n")
    path = write(
        tmp_path,
        "net.py",
        "from helpers_for_user_code import WIDTH\ndef width():\n    return WIDTH\n",
    )
    before = list(sys.path)
    assert load_callable(f"{path}:width")() == 7
    assert sys.path == before


def test_loads_a_function_from_a_module():
    assert load_callable("math:sqrt")(9.0) == 3.0


@pytest.mark.parametrize(
    ("reference", "rule"),
    [
        ("models.py", "has no ':'"),
        ("math.sqrt", "has no ':'"),
        (":make_cnn", "has an empty file or module"),
        ("models.py:", "has an empty function name"),
        ("  :  ", "has an empty file or module"),
    ],
)
def test_malformed_reference_is_refused(reference, rule):
    with pytest.raises(UserCodeError) as caught:
        load_callable(reference)
    message = str(caught.value)
    assert repr(reference) in message
    assert rule in message
    assert "package.module:function" in message  # how to write one


def test_missing_file_names_the_path(tmp_path):
    reference = f"{tmp_path / 'nowhere.py'}:make"
    with pytest.raises(UserCodeError, match="file not found") as caught:
        load_callable(reference)
    assert reference in str(caught.value)
    assert "YAML file's folder" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "summary"),
    [
        ("raise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here"),
        ("def f(:\n    pass\n", "SyntaxError: "),
        ("import no_such_package_for_batchsweep\n", "ModuleNotFoundError: No module named"),
    ],
)
def test_file_that_raises_on_import(tmp_path, source, summary):
    path = write(tmp_path, "broken.py", source)
    with pytest.raises(UserCodeError) as caught:
        load_callable(f"{path}:f")
    message = str(caught.value)
    assert message.startswith(f"{path}:f: importing {path} raised {summary}")
    assert "Traceback" not in message
    assert not any(name.startswith("batchsweep_user_broken_") for name in sys.modules)


def test_a_file_fixed_after_a_failed_import_loads(tmp_path):
    path = write(tmp_path, "flaky.py", "raise ValueError('not yet')\n")
    with pytest.raises(UserCodeError):
        load_callable(f"{path}:f")
    path.write_text("def f():\n    return 'fixed'\n")
    assert load_callable(f"{path}:f")() == "fixed"


def test_missing_attribute_suggests_a_close_callable(tmp_path):
    path = write(tmp_path, "models.py", "def make_cnn():\n    pass\ndef make_mlp():\n    pass\n")
    with pytest.raises(UserCodeError) as caught:
        load_callable(f"{path}:make_cnm")
    message = str(caught.value)
    assert f"{path}:make_cnm" in message
    assert "has no attribute 'make_cnm'" in message
    assert "Did you mean 'make_cnn'?" in message
    assert "make_mlp" in message  # the callables there


def test_missing_attribute_of_a_module():
    with pytest.raises(UserCodeError, match=r"module math has no attribute 'sqr'\. Did you mean"):
        load_callable("math:sqr")


def test_attribute_that_is_not_callable(tmp_path):
    path = write(tmp_path, "settings.py", "CHANNELS = 8\n")
    with pytest.raises(UserCodeError) as caught:
        load_callable(f"{path}:CHANNELS")
    message = str(caught.value)
    assert f"{path}:CHANNELS" in message
    assert "'CHANNELS'" in message and "is of type int, not callable" in message


def test_missing_module():
    with pytest.raises(UserCodeError) as caught:
        load_callable("no_such_package_for_batchsweep.models:make")
    message = str(caught.value)
    assert "no_such_package_for_batchsweep.models:make" in message
    assert "module 'no_such_package_for_batchsweep.models' not found" in message
    assert "installed" in message


def test_module_that_raises_on_import(tmp_path, monkeypatch):
    package = tmp_path / "userpkg_raises_for_batchsweep"
    package.mkdir()
    write(package, "__init__.py", "")
    write(package, "models.py", "import json\njson.loads('{')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserCodeError) as caught:
        load_callable("userpkg_raises_for_batchsweep.models:make")
    message = str(caught.value)
    assert "userpkg_raises_for_batchsweep.models:make" in message
    assert "raised JSONDecodeError: " in message
