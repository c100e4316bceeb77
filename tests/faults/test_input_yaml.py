"""Hostile search spaces through the real CLI process: each exits 2 with one line, no traceback,
in about the time Python takes to start, and leaves nothing behind."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.search_spaces.test_hostile_yaml import HOSTILE

ROOT = Path(__file__).resolve().parents[2]
# Before: minutes (billion laughs, 200k items) or a RecursionError traceback. The process's CPU
# time, so that a busy machine does not fail the test; the wall clock still catches a hang.
CPU_SECONDS = 2.0
WALL_SECONDS = 30.0


def sweep_run(folder: Path, space: str) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """``sweep run --space SPACE`` in a fresh process: its result, CPU and wall seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begun = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sweep", "run", "--space", space],
        cwd=folder,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.perf_counter() - begun
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, cpu, wall


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_sweep_run_refuses_a_hostile_space_in_a_second(tmp_path: Path, case: str) -> None:
    space = tmp_path / f"{case}.yaml"
    space.write_text(HOSTILE[case][0])
    done, cpu, wall = sweep_run(tmp_path, space.name)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"sweep run: error: {case}.yaml: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert HOSTILE[case][1] in done.stderr
    assert cpu < CPU_SECONDS and wall < WALL_SECONDS, (cpu, wall)
    assert [p.name for p in tmp_path.iterdir()] == [space.name]


@pytest.mark.slow
def test_a_100_mb_file_is_refused_unread(tmp_path: Path) -> None:
    space = tmp_path / "huge.yaml"
    with space.open("w") as handle:
        handle.write("name: '")
        chunk = "a" * (1 << 20)
        for _ in range(100):
            handle.write(chunk)
        handle.write("'\n")
    done, cpu, wall = sweep_run(tmp_path, str(space))
    assert done.returncode == 2
    assert "is larger than 1024 KiB" in done.stderr and len(done.stderr) < 400
    assert cpu < CPU_SECONDS and wall < WALL_SECONDS, (cpu, wall)
