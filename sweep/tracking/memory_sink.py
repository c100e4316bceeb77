"""A tracking sink that keeps everything in memory: for tests, and for sweeps that need no
tracking store. It checks the order a real store enforces (no write to an ended run)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.tracking.sink import RUN_STATUS, FinishedTrials


@dataclass
class MemoryRun:
    run_id: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(
        default_factory=dict
    )  # key -> (step, value)
    status: str = "RUNNING"
    files: dict[str, bytes] = field(default_factory=dict)
    trial_number: int | None = None

    def history(self, key: str) -> list[float]:
        return [value for _step, value in self.metrics.get(key, [])]

    def _log(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.status != "RUNNING":
            raise RuntimeError(f"run {self.run_id} is {self.status}: no more writes")
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, float(value)))


class MemorySink:
    """Implements :class:`~sweep.tracking.sink.TrackingSink` with dicts."""

    def __init__(self, experiment_id: str = "0") -> None:
        self.experiment_id = experiment_id
        self.parent_run_id: str | None = None
        self.runs: dict[str, MemoryRun] = {}
        self.mine: set[str] = set()  # runs this sink started: it ends them itself, never reaps them
        self._ids = itertools.count()

    def _new_run(self, tags: Mapping[str, Any]) -> MemoryRun:
        run = MemoryRun(f"run-{next(self._ids)}", tags={k: str(v) for k, v in tags.items()})
        self.runs[run.run_id] = run
        return run

    @property
    def parent(self) -> MemoryRun:
        assert self.parent_run_id is not None, "open_study() comes first"
        return self.runs[self.parent_run_id]

    def trial_runs(self) -> dict[int, MemoryRun]:
        return {r.trial_number: r for r in self.runs.values() if r.trial_number is not None}

    def open_study(self, *, existing_run_id: str | None, tags: Mapping[str, Any]) -> str:
        if existing_run_id in self.runs:
            self.runs[existing_run_id].status = "RUNNING"
            self.parent_run_id = existing_run_id
        else:
            self.parent_run_id = self._new_run(tags).run_id
        return self.parent_run_id

    def log_study_params(self, params: Mapping[str, Any]) -> None:
        self.parent.params.update({k: str(v) for k, v in params.items()})

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        assert self.parent_run_id is not None, "open_study() comes before start_trial()"
        run = self._new_run(tags)
        run.trial_number = number
        run.params.update({k: str(v) for k, v in params.items()})
        self.mine.add(run.run_id)
        return run.run_id

    def run_id(self, handle: str) -> str:
        return handle

    def forget_runs(self) -> None:
        """Act as a new worker: the runs started so far are another (dead) worker's."""
        self.mine.clear()

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        self.runs[run_id]._log(step, metrics)

    def end_trial(
        self,
        run_id: str,
        status: str,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        run = self.runs[run_id]
        run._log(0, metrics or {})
        run.tags.update({k: str(v) for k, v in (tags or {}).items()})
        run.status = status

    def log_report(
        self,
        *,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        folder: Path,
    ) -> None:
        parent = self.parent
        parent._log(0, metrics)
        for key, value in params.items():  # write-once, as in MLflow
            parent.params.setdefault(key, str(value))
        parent.tags.update({k: str(v) for k, v in tags.items()})
        parent.files.update({p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})

    def reap(self, finished: FinishedTrials) -> int:
        running = [
            r
            for r in self.runs.values()
            if r.status == "RUNNING" and r.trial_number is not None and r.run_id not in self.mine
        ]
        if not running:
            return 0
        states = finished()
        reaped = 0
        for run in running:
            state = states.get(run.trial_number)
            if state in RUN_STATUS:
                run.status = RUN_STATUS[state]
                run.tags["reaped"] = f"trial ended {state}"
                reaped += 1
        return reaped

    def end_study(self, status: str) -> None:
        self.parent.status = status

    def drain(self) -> None:
        return None
