"""Fault injection at the door: ``sweep run`` given a store that cannot work exits 2 with one line
naming the flag, without a traceback, within seconds, and creates nothing: no study, no MLflow
run, no file. Real processes: the CLI in a subprocess, PostgreSQL, a second process locking a
SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
# Starting the CLI loads torch, Optuna and MLflow (seconds on a busy machine); the check itself
# gives up on a server after 5 s and on a lock after 5 s.
SECONDS = 60


def sweep(folder: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEP_STORAGE", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sweep", *argv],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS * 2,
    )
    return done, time.perf_counter() - started


def assert_refused(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


CASES = {
    "postgres-down": (
        ["--storage", "postgresql://postgres@127.0.0.1:1/x"],
        ["--storage: cannot connect", "Connection refused"],
    ),
    "tracking-postgres-down": (
        ["--tracking-uri", "postgresql://postgres@127.0.0.1:1/x"],
        ["--tracking-uri: cannot connect"],
    ),
    "mysql-without-driver": (["--storage", "mysql://root@127.0.0.1/x"], ["'MySQLdb'"]),
    "sqlite-directory": (["--storage", "sqlite:///{folder}"], ["names a directory"]),
    "sqlite-in-memory": (["--storage", "sqlite://"], ["in-memory", "would be lost"]),
    "tracking-databricks": (["--tracking-uri", "databricks"], ["--tracking-uri", "databricks"]),
    "study-5000-characters": (["--study", "s" * 5000], ["--study", "is not a study name"]),
    "folds-100000": (["--folds", "100000"], ["--folds: iris", "n_folds=100000"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_store_or_flag_that_cannot_work_exits_2_and_creates_nothing(
    tmp_path: Path, case: str
) -> None:
    argv, fragments = CASES[case]
    argv = [arg.replace("{folder}", str(tmp_path)) for arg in argv]
    done, seconds = sweep(tmp_path, "run", "--space", "quick", *argv)
    assert_refused(done, *fragments)
    assert seconds < SECONDS
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_without_cuda_creates_no_study_and_no_run(tmp_path: Path) -> None:
    done, _ = sweep(tmp_path, "run", "--space", "quick", "--gpus", "0")
    assert_refused(done, "--gpus 0: no CUDA device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpus_beyond_the_device_count_creates_nothing(tmp_path: Path) -> None:
    done, _ = sweep(tmp_path, "run", "--space", "quick", "--gpus", str(torch.cuda.device_count()))
    assert_refused(done, "--gpus", "CUDA device(s)")
    assert list(tmp_path.iterdir()) == []


LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS held (x)")
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["mlflow.db", "optuna.db"])
def test_a_sqlite_store_locked_by_another_process_exits_2(tmp_path: Path, store: str) -> None:
    mlruns = tmp_path / "mlruns"
    mlruns.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(mlruns / store)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        done, seconds = sweep(tmp_path, "run", "--space", "quick")
    finally:
        holder.kill()
        holder.wait()
    flag = "--tracking-uri" if store == "mlflow.db" else "--storage"
    assert_refused(done, f"the default {flag}", "is locked by another process")
    assert seconds < SECONDS
    assert sorted(p.name for p in mlruns.iterdir()) == [store]  # the other store not created
