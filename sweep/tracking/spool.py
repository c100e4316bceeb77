"""The spool: tracking writes that could not be sent, kept on disk until a store takes them.

One JSON object per line, appended with ``O_APPEND`` and fsynced, in a file only its owner can
read (mode 0600). Whatever is in the file, replaying it cannot break a store:

- a line that is not a JSON object with a ``kind`` (a write cut short by a crash, a full disk or
  a hand edit) is moved to the ``.rejected`` file beside it, with one warning for all of them;
- an entry older than :data:`MAX_AGE_SECONDS`, or one the store refuses (:class:`Refused`), goes
  there too, so an entry that can never be delivered is not retried at every start;
- two processes never replay at once (an ``fcntl.flock`` on ``<spool>.replay-lock``), and an
  append made during a replay is kept: appends and the rewrite that ends a replay hold a second,
  short lock (``<spool>.lock``); the rewrite goes through a unique temporary file and an atomic
  rename.

A write that fails (``ENOSPC``) raises: the caller reports it as lost, never as spooled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_AGE_SECONDS = 30 * 24 * 3600.0  # an entry no store took in 30 days is given up
FILE_MODE = 0o600  # spooled writes hold params and tags: the owner's only
AGE_KEY = "spooled_at"  # seconds since the epoch, set on append


class Refused(Exception):
    """The store refused the entry for good (a 4xx answer, or an entry it cannot read)."""


class Unreachable(Exception):
    """The store cannot take the entry now; it and the entries after it stay spooled."""


@dataclass
class Replayed:
    """What one replay did with the spool's entries."""

    sent: int = 0
    kept: int = 0  # left for a later replay: another store's, or this store still unreachable
    malformed: int = 0  # not a JSON object with a kind: moved to the .rejected file
    refused: int = 0  # refused by the store: moved to the .rejected file
    expired: int = 0  # older than MAX_AGE_SECONDS: moved to the .rejected file
    unreachable: str | None = None  # why the replay stopped early, if it did

    @property
    def rejected(self) -> int:
        return self.malformed + self.refused + self.expired


class Spool:
    """Append and replay one spool file.

    Example:
        >>> spool = Spool(Path("mlruns/mlflow_spool.jsonl"))
        >>> spool.append({"kind": "set_terminated", "run_id": "abc", "status": "FINISHED"})
        >>> spool.replay(send=print, mine=lambda entry: True).sent
        1
    """

    def __init__(self, path: Path, *, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.path = path
        self.max_age_seconds = max_age_seconds
        self.rejected_path = path.with_name(path.name + ".rejected")
        self._lock_path = path.with_name(path.name + ".lock")
        self._replay_lock_path = path.with_name(path.name + ".replay-lock")
        self._aliases_path = path.with_name(path.name + ".ids")

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, entry: dict[str, Any]) -> None:
        """Add ``entry`` as one line, durably; raises OSError (ENOSPC, EACCES...) if it could not
        be written, and then leaves the file as it was."""
        line = json.dumps({**entry, AGE_KEY: time.time()}, separators=(",", ":")) + "\n"
        with self._locked(self._lock_path):
            _append_lines(self.path, line.encode())

    def reject(self, entry: dict[str, Any], reason: str) -> None:
        """Keep an entry the store refused in the ``.rejected`` file, for a person to read."""
        with self._locked(self._lock_path):
            _append_lines(self.rejected_path, _rejection(_line(entry), reason) + b"\n")

    def remember(self, alias: str, value: str) -> None:
        """Record that ``alias`` (a handle in spooled entries) now names ``value``, for the
        process that spooled entries under it and for later replays."""
        with self._locked(self._lock_path):
            _append_lines(self._aliases_path, _line({alias: value}) + b"\n")

    def aliases(self) -> dict[str, str]:
        """Every alias :meth:`remember` recorded (unreadable lines are skipped)."""
        if not self._aliases_path.exists():
            return {}
        found: dict[str, str] = {}
        for raw in self._aliases_path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                if isinstance(entry, dict):
                    found.update({k: v for k, v in entry.items() if isinstance(v, str)})
        return found

    def replay(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        mine: Callable[[dict[str, Any]], bool],
        keep_as: Callable[[dict[str, Any]], dict[str, Any]] = lambda entry: entry,
    ) -> Replayed:
        """Send the entries ``mine`` selects, in order, with ``send``.

        ``send`` raises :class:`Refused` for an entry the store will never take, and
        :class:`Unreachable` to stop: that entry and every later one of ours stay, rewritten by
        ``keep_as`` (which may, say, replace ids the sent entries resolved).
        """
        done = Replayed()
        if not self.path.exists():
            return done
        with self._locked(self._replay_lock_path):
            with self._locked(self._lock_path):
                data = self.path.read_bytes() if self.path.exists() else b""
            kept: list[bytes] = []
            rejected: list[bytes] = []
            now = time.time()
            for raw in data.split(b"\n"):
                if not raw.strip():
                    continue
                entry = _entry(raw)
                if entry is None:
                    done.malformed += 1
                    rejected.append(_rejection(raw, "malformed"))
                    continue
                age = entry.get(AGE_KEY)
                if isinstance(age, (int, float)) and now - age > self.max_age_seconds:
                    done.expired += 1
                    rejected.append(_rejection(raw, f"older than {self.max_age_seconds:.0f} s"))
                    continue
                if not mine(entry):
                    kept.append(raw)
                    continue
                if done.unreachable is not None:
                    kept.append(_line(keep_as(entry)))
                    continue
                try:
                    send(entry)
                    done.sent += 1
                except Refused as err:
                    done.refused += 1
                    rejected.append(_rejection(raw, f"refused: {err}"))
                except Unreachable as err:
                    done.unreachable = str(err) or type(err).__name__
                    kept.append(_line(keep_as(entry)))
            done.kept = len(kept)
            with self._locked(self._lock_path):
                # Appended while we sent: kept, after what was there before.
                tail = _read_from(self.path, len(data))
                if rejected:
                    _append_lines(self.rejected_path, b"".join(line + b"\n" for line in rejected))
                if kept or tail.strip():
                    self._rewrite(b"".join(line + b"\n" for line in kept) + tail)
                else:
                    self.path.unlink(missing_ok=True)
        return done

    def _rewrite(self, data: bytes) -> None:
        handle, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp"
        )  # mode 0600, a name no other process uses
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_folder(self.path.parent)

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """An exclusive ``flock``, between processes and between this process's threads (each
        holds it through its own open file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock


def _entry(raw: bytes) -> dict[str, Any] | None:
    """The entry a line holds, or None when it is not a JSON object with a string kind."""
    try:
        entry = json.loads(raw)
    except ValueError:  # a truncated line, bad UTF-8
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return None
    return entry


def _line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode()


def _rejection(raw: bytes, reason: str) -> bytes:
    """A .rejected line: why, and the spooled line as it was (as text, even if it is not JSON)."""
    return _line({"reason": reason, "line": raw.decode("utf-8", "replace")})


def _append_lines(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines) with O_APPEND, then fsync. A line cut short before (no final
    newline) is ended first, so it cannot swallow the new one. On failure the file is cut back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    handle = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        size = os.fstat(handle).st_size
        if size and os.pread(handle, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fsync(handle)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(handle, size)
            raise
    finally:
        os.close(handle)
    if created:
        _fsync_folder(path.parent)


def _read_from(path: Path, offset: int) -> bytes:
    if not path.exists():
        return b""
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read()


def _fsync_folder(folder: Path) -> None:
    """Make a created or renamed file's name durable too."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
