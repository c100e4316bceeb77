"""Report and export files are written without following a symlink, into the folder they
belong to; ``sweep best -o`` refuses a directory or a link and keeps an existing file's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sweep.best_config import write_atomically
from sweep.cli import main
from sweep.errors import UsageError
from sweep.guards.safe_files import check_output_file, write_into
from sweep.report.files import copy_files


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_text("keep me\n")
    return path


def test_a_report_file_is_written_into_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "study"
    assert write_into(folder, "a.json", "{}") == folder / "a.json"
    write_into(folder, "a.json", "[1]")  # an existing file is replaced
    assert (folder / "a.json").read_text() == "[1]"


def test_a_symlink_planted_as_a_report_file_is_refused(tmp_path: Path, victim: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "batch_size_report.json").symlink_to(victim)
    with pytest.raises(UsageError, match=r"batch_size_report\.json: is a symlink"):
        write_into(folder, "batch_size_report.json", "overwritten")
    assert victim.read_text() == "keep me\n"


def test_a_symlink_planted_as_the_report_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "reports").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="reports: is a symlink; the report's folder"):
        write_into(tmp_path / "reports", "a.csv", "x")
    assert list(elsewhere.iterdir()) == []


def test_copying_the_report_refuses_a_planted_symlink(tmp_path: Path, victim: Path) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "batch_size_report.csv").write_text("rows\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "batch_size_report.csv").symlink_to(victim)
    with pytest.raises(UsageError, match="is a symlink"):
        copy_files(staged, ["batch_size_report.csv"], out)
    assert victim.read_text() == "keep me\n"


def test_an_existing_export_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_atomically(path, '{"lr": 0.1}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == '{"lr": 0.1}'


def test_a_new_export_gets_the_umask_mode(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / "new.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["new.json"]  # no temporary file left


def test_an_output_that_is_a_directory_or_a_link_is_refused(tmp_path: Path, victim: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(UsageError, match=r"^-o .*dir\.json: is a directory"):
        check_output_file(tmp_path / "dir.json", flag="-o")
    (tmp_path / "link.json").symlink_to(victim)
    with pytest.raises(UsageError, match=r"^-o .*link\.json: is a symlink"):
        check_output_file(tmp_path / "link.json", flag="-o")
    check_output_file(tmp_path / "fresh.json", flag="-o")


def test_sweep_best_to_a_directory_exits_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "out").mkdir()
    code = main(["best", "--study", "quick", "-o", "out"])
    assert code == 2
    assert "sweep best: error: -o out: is a directory" in capsys.readouterr().err
    assert [p.name for p in workdir.iterdir()] == ["out"]
