"""The spool cannot break a store: whatever its file holds, a replay sends what it can, sets
aside what it cannot with one warning, and never loses or repeats an entry, even with two
processes replaying and a third appending; a full disk is a failure, never "spooled"."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweep.tracking.mlflow_writer import MlflowWriter, cap_mlflow_http_retries
from sweep.tracking.spool import MAX_AGE_SECONDS, Refused, Spool, Unreachable

ROOT = Path(__file__).resolve().parents[2]


def _entry(n: int, uri: str = "sqlite:///x.db") -> dict:
    return {
        "kind": "set_terminated",
        "run_id": f"run{n}",
        "status": "FINISHED",
        "tracking_uri": uri,
    }


def _replay_all(spool: Spool, **kwargs):
    sent: list[dict] = []
    done = spool.replay(sent.append, mine=lambda entry: True, **kwargs)
    return sent, done


def test_a_truncated_line_and_a_wrong_shape_line_are_set_aside_and_the_rest_sent(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(_entry(0))
    with open(spool.path, "ab") as handle:  # a crash in the middle of a write, then a hand edit
        handle.write(
            b'{"kind": "log_batch", "run_id": "ab\n[1, 2]\n"just a string"\n{"no": "kind"}\n'
        )
    spool.append(_entry(1))
    sent, done = _replay_all(spool)
    assert [entry["run_id"] for entry in sent] == ["run0", "run1"]
    assert (done.sent, done.malformed, done.kept) == (2, 4, 0)
    assert not spool.path.exists()
    rejected = [json.loads(line) for line in spool.rejected_path.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [
        '{"kind": "log_batch", "run_id": "ab',
        "[1, 2]",
        '"just a string"',
        '{"no": "kind"}',
    ]
    assert {r["reason"] for r in rejected} == {"malformed"}


def test_a_line_cut_short_without_its_newline_does_not_swallow_the_next_append(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_bytes(b'{"kind": "set_term')  # the disk filled up in the middle of a line
    spool.append(_entry(7))
    sent, done = _replay_all(spool)
    assert [entry["run_id"] for entry in sent] == ["run7"]
    assert done.malformed == 1


def test_old_and_refused_entries_go_to_rejected_and_unreachable_ones_stay_in_order(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    for n in range(5):
        spool.append(_entry(n))
    lines = spool.path.read_text().splitlines()
    old = json.loads(lines[0])
    old["spooled_at"] = time.time() - MAX_AGE_SECONDS - 60
    spool.path.write_text("\n".join([json.dumps(old), *lines[1:]]) + "\n")

    def send(entry: dict) -> None:
        if entry["run_id"] == "run1":
            raise Refused("RESOURCE_DOES_NOT_EXIST")
        if entry["run_id"] == "run3":
            raise Unreachable("connection refused")

    done = spool.replay(send, mine=lambda entry: True, keep_as=lambda e: {**e, "kept": True})
    assert (done.sent, done.refused, done.expired, done.kept) == (1, 1, 1, 2)
    assert done.unreachable == "connection refused"
    kept = [json.loads(line) for line in spool.path.read_text().splitlines()]
    assert [(e["run_id"], e["kept"]) for e in kept] == [("run3", True), ("run4", True)]
    reasons = [json.loads(line)["reason"] for line in spool.rejected_path.read_text().splitlines()]
    assert reasons[0].startswith("older than") and reasons[1] == "refused: RESOURCE_DOES_NOT_EXIST"


def test_another_stores_entries_are_left_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(_entry(0, uri="http://other:5000"))
    spool.append(_entry(1))
    sent: list[dict] = []
    done = spool.replay(
        sent.append, mine=lambda entry: entry["tracking_uri"] != "http://other:5000"
    )
    assert [entry["run_id"] for entry in sent] == ["run1"] and done.kept == 1
    assert json.loads(spool.path.read_text())["run_id"] == "run0"


def test_the_spool_and_its_companions_are_the_owners_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        spool.append(_entry(0))
        spool.reject(_entry(1), "refused")
    finally:
        os.umask(old_umask)
    for path in (spool.path, spool.rejected_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# -- a full disk


def _small_tmpfs(folder: Path) -> bool:
    """Mount a 64 KiB tmpfs on ``folder`` where this process may (root); False otherwise."""
    if os.geteuid() != 0:
        return False
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
    )
    return mounted.returncode == 0


@pytest.fixture(params=[pytest.param("tmpfs", marks=pytest.mark.slow), "injected"])
def full_disk(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder where the next append fails with ENOSPC: a real full tmpfs where one can be
    mounted, else an injected OSError(ENOSPC) on the write."""
    folder = tmp_path / "disk"
    if request.param == "tmpfs":
        if not _small_tmpfs(folder):
            pytest.skip("cannot mount a tmpfs here (not root); the injected case covers it")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))
    else:
        folder.mkdir()
    spool = Spool(folder / "spool.jsonl")
    spool.append(_entry(0))  # creates the file and its lock file
    # What was there before the disk filled up: one line to the end of a page, so that the
    # next byte needs a new page.
    line = json.dumps(_entry(0) | {"spooled_at": time.time(), "pad": ""})
    spool.path.write_text(line[:-2] + "x" * (4096 - len(line) - 1) + '"}\n')
    assert spool.path.stat().st_size == 4096
    if request.param == "tmpfs":
        filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError):
            while True:
                os.write(filler, b"x" * 512)
        os.close(filler)
    else:
        real_write, spool_inode = os.write, spool.path.stat().st_ino

        def write(fd: int, data) -> int:  # noqa: ANN001 - os.write's
            if os.fstat(fd).st_ino != spool_inode:
                return real_write(fd, data)
            real_write(fd, bytes(data)[:7])  # a few bytes land, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", write)
    return spool


def test_a_full_disk_is_an_error_and_leaves_the_spool_as_it_was(full_disk: Spool) -> None:
    before = full_disk.path.read_bytes()
    with pytest.raises(OSError) as raised:
        full_disk.append(_entry(1) | {"padding": "x" * 100_000})
    assert raised.value.errno == errno.ENOSPC
    assert full_disk.path.read_bytes() == before  # a partial line was cut back


class _Down:
    """A client whose every call fails as an unreachable server's does."""

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            raise ConnectionError("tracking server unreachable")

        return call


def test_the_writer_reports_a_full_disk_as_lost_never_as_spooled(
    full_disk: Spool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sweep.tracking import mlflow_writer

    monkeypatch.setattr(mlflow_writer, "RETRY_DELAYS_SECONDS", (0.01,))
    writer = MlflowWriter(_Down(), "http://127.0.0.1:9", full_disk)
    with caplog.at_level(logging.WARNING):
        writer.set_terminated("abc", "FINISHED")
        writer.drain()
    assert (writer.spooled, writer.lost) == (0, 1)
    text = caplog.text
    assert "LOST" in text and "disk is full" in text
    assert "wait in" not in text  # never "spooled"


# -- two processes replaying, a third appending

REPLAYER = """
import json, sys, time
from pathlib import Path
from sweep.tracking.spool import Spool
spool, out = Spool(Path(sys.argv[1])), Path(sys.argv[2])
def send(entry):
    with open(out, "a") as handle:
        handle.write(json.dumps(entry["run_id"]) + "\\n")
    time.sleep(0.002)
print(spool.replay(send, mine=lambda entry: True).sent)
"""


@pytest.mark.slow
def test_two_processes_replaying_and_one_appending_lose_and_repeat_nothing(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    for n in range(300):
        spool.append(_entry(n))
    outputs = [tmp_path / f"sent{i}.txt" for i in range(2)]
    replayers = [
        subprocess.Popen(
            [sys.executable, "-c", REPLAYER, str(spool.path), str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for out in outputs
    ]
    appended = 300
    while any(replayer.poll() is None for replayer in replayers):  # appends while they replay
        spool.append(_entry(appended))
        appended += 1
        time.sleep(0.005)
    assert [replayer.returncode for replayer in replayers] == [0, 0]
    sent = [json.loads(line) for out in outputs if out.exists() for line in out.read_text().split()]
    left = (
        [json.loads(line)["run_id"] for line in spool.path.read_text().splitlines()]
        if (spool.path.exists())
        else []
    )
    everything = sent + left
    assert len(everything) == len(set(everything)) == appended  # nothing lost, nothing twice
    assert {f"run{n}" for n in range(300)} <= set(sent)  # what was there when they started
    assert not list(tmp_path.glob("*.tmp"))  # the temp files were renamed or removed


# -- many undeliverable entries


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spool_of(path: Path, uri: str, n: int, *, run_id: str) -> Spool:
    spool = Spool(path)
    line = json.dumps(
        {
            "kind": "set_terminated",
            "run_id": run_id,
            "status": "FINISHED",
            "tracking_uri": uri,
            "spooled_at": time.time(),
        }  # fmt: skip
    )
    path.write_text((line + "\n") * n)
    return spool


@pytest.mark.parametrize("case", ["unreachable", "never created"])
def test_a_4001_line_undeliverable_spool_warns_once(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    cap_mlflow_http_retries()
    uri = f"http://127.0.0.1:{_closed_port()}"
    run_id = "0123abcd" if case == "unreachable" else "pending-0123abcd"
    spool = _spool_of(tmp_path / "spool.jsonl", uri, 4001, run_id=run_id)
    writer = MlflowWriter(MlflowClient(uri), uri, spool)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        done = writer.replay_spool()
    assert time.monotonic() - started < 10  # one failed request, not 4001 (nor MLflow's retries)
    assert len(caplog.records) == 1, caplog.text
    if case == "unreachable":
        assert done.kept == 4001 and "4001 spooled MLflow write(s) wait" in caplog.text
        assert len(spool.path.read_text().splitlines()) == 4001
    else:  # their run was never created: no store will ever take them
        assert done.refused == 4001 and not spool.path.exists()
        assert len(spool.rejected_path.read_text().splitlines()) == 4001
        assert str(spool.rejected_path) in caplog.text


@pytest.mark.slow
def test_a_broken_spool_does_not_stop_the_next_sweep_on_its_store(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's case: a truncated line (JSONDecodeError) or ``[1, 2]`` (AttributeError) made
    every later sweep and report against the store crash."""
    from sweep.tracking.mlflow_sink import MlflowSink
    from tests.conftest import local_tracking_uri

    uri = local_tracking_uri()
    first = MlflowSink(uri, "broken")
    parent = first.open_study(existing_run_id=None, tags={"study": "broken"})
    first.drain()
    spool = workdir / "mlruns" / "mlflow_spool.jsonl"
    good = {"kind": "set_terminated", "run_id": parent, "status": "KILLED", "tracking_uri": uri}
    spool.write_text('{"kind": "log_batch", "run_id": "ab\n[1, 2]\n' + json.dumps(good) + "\n")
    with caplog.at_level(logging.WARNING):
        again = MlflowSink(uri, "broken")  # what every later sweep, worker and report does
    assert again.client.get_run(parent).info.status == "KILLED"  # the good entry went out
    assert not spool.exists()
    assert len(spool.with_name(spool.name + ".rejected").read_text().splitlines()) == 2
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == 1 and "2 malformed line(s)" in malformed[0].getMessage()
