"""Heartbeats for trials taken with ask/tell, which Optuna beats only inside ``study.optimize``,
and the owner of each trial, so a dead worker's trial is found at once on its host.

A trial whose heartbeat stops (its worker died) is failed and re-queued by any worker that calls
:func:`fail_stale_trials`; Optuna's ``RetryHeartbeatStaleTrialCallback`` on the storage does the
re-queue. That takes three missed beats; a trial whose worker ran on this host and is gone (a
crash, kill -9: the usual case on SQLite) is failed and re-queued without waiting, and so is a
RUNNING trial that never had a heartbeat or an owner (orphaned by an older version).
"""

from __future__ import annotations

import copy
import datetime
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages._rdb.models import TrialHeartbeatModel  # heartbeats have no public reader
from optuna.trial import FrozenTrial, TrialState

from sweep.study.attrs import FAIL_REASON_ATTR, WORKER_ATTR
from sweep.study.resume import HEARTBEAT_SECONDS


def fail_stale_trials(study: optuna.Study) -> None:
    """Trials whose worker stopped beating its heartbeat, or is gone from this host: FAILED,
    with the reason, and re-queued for a retry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    fail_orphaned_trials(study)


def claim_trial(study: optuna.Study, trial: optuna.Trial) -> None:
    """Record that this process runs ``trial`` (its host, pid and the pid's start time), and its
    first heartbeat: from its first moment it can be found dead."""
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "trial": trial.number}
    owner["pid_start"] = _process_start(os.getpid())
    storage = study._storage  # noqa: SLF001 - a system attr, kept out of the user's attrs
    storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, owner)  # noqa: SLF001
    record = heartbeat_recorder(study)
    if record is not None:
        record(trial)


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """FAIL and re-queue the RUNNING trials whose worker ran on this host and is gone, and those
    with neither an owner nor a heartbeat for longer than the grace period; their numbers."""
    storage = study._storage  # noqa: SLF001 - heartbeats and re-queue live on the storage
    host, me = socket.gethostname(), os.getpid()
    grace = datetime.timedelta(seconds=3 * HEARTBEAT_SECONDS)
    failed: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.system_attrs.get(WORKER_ATTR)
        if isinstance(owner, dict) and owner.get("trial") == trial.number:
            if owner.get("host") != host or owner.get("pid") == me or _alive(owner):
                continue  # another host's is left to its heartbeat
            reason = f"its worker (pid {owner.get('pid')} on {host}) is gone"
        else:  # asked by an older version, or a retry not yet claimed
            started = trial.datetime_start
            if started is None or datetime.datetime.now() - started < grace:
                continue
            if _has_heartbeat(storage, trial._trial_id):  # noqa: SLF001
                continue  # Optuna judges it by its heartbeat
            reason = f"RUNNING since {started:%Y-%m-%d %H:%M:%S} with no heartbeat or owner"
        if _fail_and_requeue(study, trial, reason):
            failed.append(trial.number)
    return failed


def _fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    storage = study._storage  # noqa: SLF001
    trial_id = trial._trial_id  # noqa: SLF001
    try:
        storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, reason)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # it ended meanwhile, or another worker failed it first
    retry = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if retry is not None:
        # The retry starts clean: not this trial's owner, nor its failure.
        ended = copy.deepcopy(storage.get_trial(trial_id))
        ended.user_attrs = {k: v for k, v in ended.user_attrs.items() if k != FAIL_REASON_ATTR}
        ended.system_attrs = {k: v for k, v in ended.system_attrs.items() if k != WORKER_ATTR}
        retry(study, ended)
    return True


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the process ``owner`` names runs (on this host), and is the same process."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    started = _process_start(pid)
    if started is None:
        return True  # no /proc: the pid is all we know
    return started != "zombie" and owner.get("pid_start") in (None, started)


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot ("zombie" for a dead one not yet
    waited for), or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the name, in parentheses, may hold spaces
    if fields[0] in ("Z", "X"):
        return "zombie"
    return fields[19]


def _has_heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> bool:
    """Whether the trial ever recorded a heartbeat (True when that cannot be read)."""
    storage = getattr(storage, "_backend", storage)  # the RDB storage under Optuna's cache
    try:
        session = storage.scoped_session()  # type: ignore[attr-defined]
        try:
            return (
                session.query(TrialHeartbeatModel).filter_by(trial_id=trial_id).first() is not None
            )
        finally:
            session.close()
    except Exception:  # noqa: BLE001 - not an RDB storage, or another Optuna: assume it has one
        return True


def heartbeat_recorder(study: optuna.Study) -> Callable[[optuna.Trial], None] | None:
    """A function recording one trial's heartbeat, or None when the storage has no heartbeats."""
    storage = study._storage  # noqa: SLF001 - Optuna exposes heartbeats only here
    if not hasattr(storage, "record_heartbeat") or storage.get_heartbeat_interval() is None:
        return None
    return lambda trial: storage.record_heartbeat(trial._trial_id)  # noqa: SLF001


class GroupHeartbeat:
    """Beats for every live trial of a group, including those still waiting for their stack, so
    no other worker takes them for dead. Call :meth:`beat` often; it writes at most every
    ``HEARTBEAT_SECONDS / 3``. ``last``: when the group's trials were last beaten, if they were
    (on being asked); else they are beaten now."""

    def __init__(
        self,
        study: optuna.Study,
        trials: Callable[[], Iterable[optuna.Trial]],
        *,
        last: float = 0.0,
    ) -> None:
        self.record, self.trials, self.last = heartbeat_recorder(study), trials, last
        self.beat()

    def beat(self) -> None:
        if self.record is None or time.monotonic() - self.last < HEARTBEAT_SECONDS / 3:
            return
        for trial in self.trials():
            self.record(trial)
        self.last = time.monotonic()
