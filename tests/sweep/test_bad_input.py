"""Bad input: a message naming the flag or file, the key, the rule and the value; exit 2;
and nothing created: no mlruns/, no study, no MLflow run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sweep.cli import main
from tests.conftest import tiny_space, write_space


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["run", *argv])
    return code, capsys.readouterr().err


def _csv(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


GOOD_ROWS = "".join(f"{i},{i * 2},{i % 3}\n" for i in range(30))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--space", "no_such_space"], ["no_such_space", "default"]),
        (["--space", "quick", "--trials", "0"], ["--trials", "budget.trials", "0"]),
        (["--space", "quick", "--folds", "1"], ["--folds", "cv.folds", "1"]),
        (["--space", "quick", "--epochs", "-3"], ["--epochs", "training.epochs", "-3"]),
        (
            ["--space", "quick", "--dataset", "missing.csv", "--target", "y"],
            ["--dataset", "missing.csv"],
        ),
        (["--space", "quick", "--device", "tpu"], ["--device", "tpu"]),
        (
            ["--space", "quick", "--precision", "fp16"],
            ["--precision", "training.precision", "'fp16'", "bf16"],
        ),
        (
            ["--space", "quick", "--capture", "graphs"],
            ["--capture", "training.capture", "'graphs'", "compile"],
        ),
        (["--space", "quick", "--threads", "0"], ["--threads", "training.threads", "0"]),
        (["--space", "quick", "--threads", "many"], ["--threads", "training.threads", "'many'"]),
        (["--space", "quick", "--storage", "not a url"], ["--storage", "not a url"]),
        (["--space", "quick", "--storage", "redis://localhost"], ["--storage", "redis"]),
        (
            ["--space", "quick", "--tracking-uri", "file:///tmp/old-mlruns"],
            ["--tracking-uri", "file:///tmp/old-mlruns", "sqlite"],
        ),
        (
            ["--space", "quick", "--tracking-uri", "http://127.0.0.1:9"],
            ["unreachable", "http://127.0.0.1:9"],
        ),
    ],
)
def test_bad_flag_exits_2_and_creates_nothing(workdir: Path, capsys, argv, expected) -> None:
    code, err = _run(capsys, *argv)
    assert code == 2
    for fragment in expected:
        assert fragment in err
    assert not (workdir / "mlruns").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_gpu_exits_2(workdir: Path, capsys) -> None:
    code, err = _run(capsys, "--space", "quick", "--device", "cuda")
    assert code == 2
    assert "--device" in err and "'cuda'" in err and "is_available() is False" in err
    assert not (workdir / "mlruns").exists()


@pytest.mark.parametrize(
    ("csv_text", "target", "expected"),
    [
        ("a,b,y\n" + GOOD_ROWS, "label", ["'label'", "y"]),  # missing target column
        ("a,b,y\n" + GOOD_ROWS + "x,1,1\n", "y", ["'a'", "x"]),  # non-numeric feature
        ("a,b,y\n" + GOOD_ROWS + "nan,1,1\n", "y", ["'a'", "nan"]),  # NaN
        ("a,b,y\n" + GOOD_ROWS + "inf,1,1\n", "y", ["'a'", "inf"]),  # inf
        ("a,b,y\n1,2,3\n2,3,4\n", "y", ["n_folds=3", "n_samples=2"]),  # too few rows for k folds
        (
            "a,b,y\n" + GOOD_ROWS + "1,1,7\n",
            "y",
            ["7", "n_folds=3"],
        ),  # a class smaller than the folds
    ],
    ids=["missing-target", "non-numeric", "nan", "inf", "too-few-rows", "small-class"],
)
def test_bad_csv_exits_2_and_names_file_and_column(
    workdir: Path, capsys, csv_text, target, expected
) -> None:
    path = _csv(workdir, "data.csv", csv_text)
    code, err = _run(capsys, "--space", "quick", "--dataset", path, "--target", target)
    assert code == 2
    assert "data.csv" in err
    for fragment in expected:
        assert fragment in err, err
    assert not (workdir / "mlruns").exists()


def test_bad_yaml_key_names_file_key_and_value(workdir: Path, capsys) -> None:
    space = write_space(
        workdir,
        "typo",
        tiny_space(workdir).read_text().replace("pruner: none", "pruner: sometimes"),
    )
    code, err = _run(capsys, "--space", str(space))
    assert code == 2
    assert "typo.yaml" in err and "pruner" in err and "sometimes" in err
    assert not (workdir / "mlruns").exists()


@pytest.mark.slow
def test_resuming_with_another_space_is_refused_and_keeps_the_study(workdir: Path, capsys) -> None:
    first = tiny_space(workdir, name="first", trials=1, epochs=1)
    assert main(["run", "--space", str(first), "--study", "shared"]) == 0
    db = workdir / "mlruns" / "optuna.db"
    before = db.read_bytes()
    other = tiny_space(workdir, name="other", trials=1, epochs=2)
    capsys.readouterr()
    code, err = _run(capsys, "--space", str(other), "--study", "shared")
    assert code == 2
    assert "--study 'shared'" in err and "different" in err
    assert db.read_bytes() == before


@pytest.mark.slow
def test_console_script_exit_code_is_2(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sweep", "run", "--space", "quick", "--folds", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--folds" in result.stderr
    assert not (workdir / "mlruns").exists()
