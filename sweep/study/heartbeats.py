"""Heartbeats for trials taken with ask/tell, which Optuna beats only inside ``study.optimize``.

A trial whose heartbeat stops (its worker died) is failed and re-queued by any worker that calls
:func:`fail_stale_trials`; Optuna's ``RetryHeartbeatStaleTrialCallback`` on the storage does the
re-queue.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable

import optuna

from sweep.study.resume import HEARTBEAT_SECONDS


def fail_stale_trials(study: optuna.Study) -> None:
    """Trials whose worker stopped beating its heartbeat: FAILED, and re-queued for a retry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


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
