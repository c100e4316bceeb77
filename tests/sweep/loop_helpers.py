"""Small worlds for testing the trial loop directly: a tiny synthetic space, an in-memory study
and an in-memory tracking sink. Each run of the loop on them takes tens of milliseconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces import SweepSpec, load_space
from sweep.commands.checks import load_inputs
from sweep.graceful_stop import GracefulStop
from sweep.study.resume import make_pruner, make_sampler
from sweep.study.trial_loop import TrainingClock, run_trials
from sweep.study.trial_session import TrialSession
from sweep.tracking.memory_sink import MemorySink
from trainers.problem import TrainingProblem

# 60 rows x 3 features, 3 folds: every training fold holds 40 rows.
LOOP_SPACE = """
name: loop
dataset: {{source: synthetic, n_samples: 60, n_features: 3}}
model: {{hidden: [4]}}
cv: {{folds: 3, seed: 0}}
training: {{epochs: {epochs}, device: cpu}}
search:
  batch_size: {batch_sizes}
  lr: {lrs}
  optimizer: [{optimizers}]
sampler: {{name: {sampler}, seed: 0}}
pruner: {pruner}
budget: {{trials: {trials}, group_size: {group_size}}}
"""
TRAIN_ROWS = 40  # rows of each training fold of LOOP_SPACE
FOLDS = 3
PARENT_TAGS = {"kind": "parent"}

# The sink's run status for each way a trial ends.
RUN_STATUS_OF = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


def loop_spec(
    folder: Path,
    *,
    trials: int = 4,
    group_size: int = 4,
    epochs: int = 2,
    batch_sizes: str = "[8, full]",
    lrs: str = "[0.01, 0.1]",
    optimizers: str = "sgd",
    sampler: str = "grid",
    pruner: str = "none",
) -> SweepSpec:
    path = folder / "loop.yaml"
    path.write_text(
        LOOP_SPACE.format(
            epochs=epochs,
            batch_sizes=batch_sizes,
            lrs=lrs,
            optimizers=optimizers,
            sampler=sampler,
            pruner=pruner,
            trials=trials,
            group_size=group_size,
        )
    )
    return load_space(str(path))


def training_problem(spec: SweepSpec) -> TrainingProblem:
    """What ``sweep run`` trains the spec's trials on (as :meth:`sweep.outcome.Inputs.problem`)."""
    return load_inputs(spec).problem()


def memory_study(spec: SweepSpec) -> optuna.Study:
    return optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        directions=["minimize"] * len(spec.objectives),
    )


def open_sink() -> MemorySink:
    sink = MemorySink()
    sink.open_study(existing_run_id=None, tags=PARENT_TAGS)
    return sink


@dataclass
class LoopWorld:
    """What one test drives: the spec, its problem, a study and a sink, and what the loop said."""

    spec: SweepSpec
    problem: TrainingProblem
    study: optuna.Study
    sink: MemorySink
    ended: list[int] = field(default_factory=list)  # trial numbers, in on_trial_end order
    on_end: Callable[[optuna.Study, TrialSession], None] | None = None

    def on_trial_end(self, study: optuna.Study, session: TrialSession) -> None:
        self.ended.append(session.number)
        if self.on_end is not None:
            self.on_end(study, session)

    def run(
        self,
        *,
        stop: GracefulStop | None = None,
        final_params: dict | None = None,
        clock: TrainingClock | None = None,
    ) -> None:
        run_trials(
            self.study,
            self.spec,
            self.problem,
            self.sink,
            on_trial_end=self.on_trial_end,
            stop=stop,
            final_params=final_params,
            clock=clock,
        )

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def states(self) -> Counter[TrialState]:
        return Counter(trial.state for trial in self.trials())


def loop_world(spec: SweepSpec, *, sink: MemorySink | None = None) -> LoopWorld:
    return LoopWorld(spec, training_problem(spec), memory_study(spec), sink or open_sink())


def resolved(batch_size: object) -> int:
    """The rows per batch LOOP_SPACE's folds train with for a ``batch_size`` parameter."""
    return TRAIN_ROWS if batch_size == "full" else min(int(batch_size), TRAIN_ROWS)
