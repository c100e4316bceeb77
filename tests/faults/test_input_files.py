"""Files a sweep writes for the user, against a planted symlink and an escaping study name: a
real study, then ``sweep report`` and ``sweep best -o`` through the CLI."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sweep.cli import main
from sweep.commands.run import RunOptions, run_sweep
from tests.conftest import tiny_space

pytestmark = pytest.mark.slow


@pytest.fixture
def study(workdir: Path) -> str:
    run_sweep(RunOptions(space=str(tiny_space(workdir, trials=2, epochs=2))))
    return "tiny"


def test_report_refuses_a_planted_symlink_and_leaves_its_target(
    workdir: Path, study: str, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = workdir / "victim.csv"
    victim.write_text("not a report\n")
    folder = workdir / "mlruns" / "reports" / study
    folder.mkdir(parents=True)
    (folder / "batch_size_report.csv").symlink_to(victim)
    capsys.readouterr()
    assert main(["report", "--study", study]) == 2
    err = capsys.readouterr().err
    assert "batch_size_report.csv: is a symlink" in err and "Traceback" not in err
    assert victim.read_text() == "not a report\n"


@pytest.mark.parametrize("name", ["../../../escape7", "/tmp/escape-absolute"])
def test_report_refuses_a_study_name_that_leaves_the_reports_folder(
    workdir: Path, study: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    assert main(["report", "--study", name]) == 2
    assert "is not a study name" in capsys.readouterr().err
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*")) == before
    assert not Path("/tmp/escape-absolute").exists()


def test_best_keeps_the_mode_of_the_file_it_replaces(
    workdir: Path, study: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = workdir / "best.json"
    out.write_text("{}")
    out.chmod(0o604)
    assert main(["best", "--study", study, "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    assert '"batch_size"' in out.read_text()
