"""What a report reads of a study, read from storage once: its trials and a few attributes. The
report is built from this plain record, never from a live study, so it is tested without one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.study.attrs import BUDGET_ATTR, CONTEXT_ATTR, COUNTED_STATES, REPORT_MARKER_ATTR


@dataclass(frozen=True)
class StudySnapshot:
    name: str
    trials: list[FrozenTrial]
    n_objectives: int = 1
    budget: int = 0  # the COMPLETE + PRUNED trials the study is to hold
    context: dict[str, Any] = field(default_factory=dict)  # what an exported config needs
    logged_report: str = ""  # the fingerprint of the study when its report was last logged

    @property
    def fingerprint(self) -> str:
        """What a report is built from: the budget and the finished trials, by number and state.
        Equal fingerprints give the same report, so it need not be drawn and logged again."""
        finished = ",".join(
            f"{t.number}:{t.state.name}" for t in self.trials if t.state in COUNTED_STATES
        )
        digest = hashlib.sha1(finished.encode()).hexdigest()[:16]
        return f"{self.counted}/{self.budget}:{digest}"

    @property
    def counted(self) -> int:
        return sum(t.state in COUNTED_STATES for t in self.trials)

    @property
    def complete(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE]


def snapshot_of(study: optuna.Study) -> StudySnapshot:
    attrs = study.user_attrs
    return StudySnapshot(
        name=study.study_name,
        trials=study.get_trials(deepcopy=False),
        n_objectives=len(study.directions),
        budget=int(attrs.get(BUDGET_ATTR, 0)),
        context=attrs.get(CONTEXT_ATTR, {}),
        logged_report=str(attrs.get(REPORT_MARKER_ATTR, "")),
    )


def as_study(snapshot: StudySnapshot) -> optuna.Study:
    """An in-memory study holding the snapshot's finished trials, for Optuna's own plots."""
    study = optuna.create_study(
        study_name=snapshot.name,
        storage=optuna.storages.InMemoryStorage(),
        directions=["minimize"] * snapshot.n_objectives,
    )
    study.add_trials([t for t in snapshot.trials if t.state.is_finished()])
    return study
