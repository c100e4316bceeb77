"""A stack's pruning decisions, made from one read of the study per epoch, are the decisions
Optuna's own ``trial.should_prune()`` makes trial by trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweep.commands.run import RunOptions, run_sweep
from sweep.study.pruning import CompletedTrials, trials_to_prune
from sweep.study.trial_record import record_of
from tests.conftest import tiny_space

DISTRIBUTIONS = {"x": FloatDistribution(0, 1)}


def _study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    # One name for both: Hyperband puts a trial in a bracket by hashing the study name with it.
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="pruned", storage=storage, pruner=pruner)
    for curve in ([1.0, 0.8, 0.6], [0.9, 0.7, 0.5], [1.1, 0.9, 0.8], [1.2, 1.0, 0.9]):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=curve[-1],
                params={"x": 0.5},
                distributions=DISTRIBUTIONS,
                intermediate_values=dict(enumerate(curve, start=1)),
            )
        )
    return study


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        optuna.pruners.PercentilePruner(25.0, n_startup_trials=2),
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=3),
    ],
    ids=["median", "percentile", "hyperband"],
)
def test_one_read_per_epoch_decides_as_should_prune(pruner) -> None:
    """Two identical studies (a pruner may record its decisions, so each decides once): one asks
    trial by trial, the other for the whole group; pruned trials stop reporting in both."""
    studies = [_study(pruner), _study(pruner)]
    groups = [[study.ask(DISTRIBUTIONS) for _ in range(5)] for study in studies]
    levels = dict(zip((t.number for t in groups[0]), (0.5, 0.85, 0.95, 1.3, 2.0)))
    stopped: list[set[int]] = [set(), set()]
    reported: dict[int, dict[int, float]] = {}  # group 1's values, as the stack keeps them
    completed = CompletedTrials(studies[1])
    for step in (1, 2, 3):
        for group, gone in zip(groups, stopped):
            for trial in group:
                if trial.number not in gone:
                    value = levels[trial.number] + 0.1 * (3 - step)
                    trial.report(value, step)
                    reported.setdefault(trial.number, {})[step] = value
        live = [[t for t in group if t.number not in gone] for group, gone in zip(groups, stopped)]
        by_trial = {trial.number for trial in live[0] if trial.should_prune()}
        by_group = trials_to_prune(studies[1], live[1], completed=completed, reported=reported)
        assert by_group == by_trial
        if isinstance(pruner, optuna.pruners.PercentilePruner):  # pure: may decide twice
            assert trials_to_prune(studies[1], live[1]) == by_group  # values read from storage
        stopped[0] |= by_trial
        stopped[1] |= by_group
    assert stopped[0], "the setup prunes something"
    assert trials_to_prune(studies[1], []) == set()


@pytest.mark.slow
def test_median_pruner_prunes_in_a_sweep_with_its_reason(workdir: Path) -> None:
    text = tiny_space(workdir, trials=12, epochs=6, lr="{low: 0.0001, high: 1.0}").read_text()
    space = workdir / "pruned.yaml"
    space.write_text(
        text.replace("pruner: none", "pruner: median").replace("name: tiny", "name: pruned")
    )
    run_sweep(RunOptions(space=str(space)))
    study = optuna.load_study(study_name="pruned", storage="sqlite:///mlruns/optuna.db")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "with LRs from 1e-4 to 1, some trials fall behind the median"
    for trial in pruned:
        reason = record_of(trial).prune_reason
        last_step = max(trial.intermediate_values)
        assert reason.startswith(f"pruned at epoch {last_step}: cv val_loss")
        assert len(record_of(trial).val_loss_curve) == last_step  # it stopped there
