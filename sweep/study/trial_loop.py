"""The ask/tell loop: ask the sampler for a group of trials, train those that share a batch size
as one stack, tell the study how each ended, until the budget is met.

With ``group_size`` 1 this is Optuna's sequential loop; larger groups lean on TPE's constant liar
to spread the asked trials out while they run.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from search_spaces.spec import SweepSpec
from sweep.graceful_stop import GracefulStop
from sweep.study.heartbeats import (
    GroupHeartbeat,
    claim_trial,
    fail_stale_trials,
)
from sweep.study.pruning import CompletedTrials, trials_to_prune
from sweep.study.resume import counted_trials, grid_size
from sweep.study.trial_session import TrialSession, error_reason, fail_trial, record_gradient_noise
from sweep.tracking.sink import TrackingSink
from trainers.problem import TrainingProblem


@dataclass
class TrainingClock:
    """Seconds spent in the engine, its per-epoch callbacks (MLflow buffering, pruner reports)
    excluded: the rest of a sweep's wall time is what Optuna, MLflow and the report add."""

    seconds: float = 0.0


def run_trials(
    study: optuna.Study,
    spec: SweepSpec,
    problem: TrainingProblem,
    sink: TrackingSink,
    *,
    on_trial_end: Callable[[optuna.Study, TrialSession], None],
    stop: GracefulStop | None = None,
    final_params: dict[int, torch.Tensor] | None = None,
    clock: TrainingClock | None = None,
) -> None:
    """Run trials until the study holds ``spec.budget.trials`` COMPLETE + PRUNED ones, counting
    the trials other workers are running, or until ``stop`` is requested."""
    budget = spec.budget.trials
    if spec.sampler.name == "grid":
        budget = min(budget, grid_size(spec))  # a grid point is never run twice
    deadline = (
        None
        if spec.budget.timeout_seconds is None
        else time.monotonic() + spec.budget.timeout_seconds
    )
    row_ceiling: int | None = None  # lowered after an out-of-memory error
    while True:
        if stop is not None and stop.requested:
            return
        fail_stale_trials(study)  # a dead worker's trial: FAILED and re-queued, then run here
        taken = counted_trials(study) + len(
            study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        )
        remaining = budget - taken
        if remaining <= 0 or (deadline is not None and time.monotonic() >= deadline):
            return
        asked: list[optuna.Trial] = []
        sessions: list[TrialSession] = []
        first_beat = time.monotonic()  # every trial asked below is beaten at once
        try:
            with warnings.catch_warnings():
                # Optuna beats heartbeats only inside study.optimize; sweep.study.heartbeats does it here.
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                for _ in range(min(spec.budget.group_size, remaining)):
                    # Shielded: a trial asked is a session to end, never a RUNNING orphan.
                    with _shield(stop):
                        trial = study.ask()
                        asked.append(trial)
                        claim_trial(study, trial)
                        if _over_budget(study, trial, budget):
                            break
                        session = TrialSession(
                            study,
                            trial,
                            spec,
                            sink,
                            metric_name=problem.metric_name,
                            full_batch_size=max(problem.train_sizes),
                            report_to_pruner=spec.pruner != "none",
                        )
                        sessions.append(session)
            heartbeat = GroupHeartbeat(
                study,
                lambda group=sessions: [s.trial for s in group if not s.done],
                last=first_beat,
            )
            for pending in _stacks(sessions, problem):
                while pending:
                    take = _trials_that_fit(pending, problem, row_ceiling)
                    stack, pending = pending[:take], pending[take:]
                    if stop is not None and stop.requested:
                        with _shield(stop):  # not started: FAILED, so a resume runs them again
                            for session in stack:
                                session.fail(f"not started: stopped by {stop.requested}")
                        continue
                    row_ceiling = _train(stack, problem, heartbeat, row_ceiling, stop, clock)
                    for session in stack:
                        if final_params is not None and session.final_params is not None:
                            final_params[session.number] = session.final_params  # for the report
                        on_trial_end(study, session)
        except BaseException as err:
            # Every trial asked is ended before the error goes on: FAILED, with the reason.
            reason = error_reason(err)
            with _shield(stop):
                for session in sessions:
                    with contextlib.suppress(Exception):  # fail_trial below ends it anyway
                        session.fail(reason)
                for trial in asked:
                    fail_trial(study, trial, reason)  # those no session ended
            raise


def _over_budget(study: optuna.Study, trial: optuna.Trial, budget: int) -> bool:
    """Two workers may ask for the last trial at once. The one whose trial has the higher number
    gives it back (FAILED, with the reason; failed trials do not count), so the budget is exact.

    At most ``number + 1`` trials have a number up to the trial's: below the budget, no read."""
    if trial.number < budget:
        return False
    taken = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    if sum(other.number <= trial.number for other in taken) <= budget:
        return False
    trial.set_user_attr("surplus", "another worker took the study's last trial first")
    study.tell(trial, state=TrialState.FAIL)
    return True


def _stacks(sessions: list[TrialSession], problem: TrainingProblem) -> list[list[TrialSession]]:
    """Sessions grouped by what lets them share batches, smallest batch size first."""
    groups: dict[tuple, list[TrialSession]] = {}
    for session in sessions:
        groups.setdefault(problem.stack_key(session.config), []).append(session)
    return [groups[key] for key in sorted(groups, key=lambda key: key[0])]


def _trials_that_fit(
    stack: list[TrialSession], problem: TrainingProblem, row_ceiling: int | None
) -> int:
    """How many of ``stack``'s trials train together. The built-in MLP's engine computes a step
    too large for the row ceiling in chunks, so all of them; the generic engine does not split a
    batch, so after an out-of-memory error it stacks fewer trials (at least one)."""
    if problem.fast or row_ceiling is None:
        return len(stack)
    rows_per_trial = problem.n_folds * problem.resolved_batch_size(stack[0].config)
    return max(1, row_ceiling // rows_per_trial)


def _train(
    stack: list[TrialSession],
    problem: TrainingProblem,
    heartbeat: GroupHeartbeat,
    row_ceiling: int | None,
    stop: GracefulStop | None,
    clock: TrainingClock | None = None,
) -> int | None:
    """Train one stack and end its trials; returns the row ceiling for the stacks after it."""
    callback_seconds = 0.0

    reported: list[int] = []  # the trials that reported this epoch, for the pruner
    completed = CompletedTrials(stack[0].study)  # read again at most once a second

    def on_epoch(index: int, report) -> bool:  # noqa: ANN001 - trainers.EpochReport
        nonlocal callback_seconds
        started = time.perf_counter()
        heartbeat.beat()
        stack[index].on_epoch(report)
        keep_going = True
        if stop is not None and stop.requested:
            stack[index].prune_reason = f"stopped by {stop.requested} after epoch {report.epoch}"
            keep_going = False
        elif stack[index].report_to_pruner:
            reported.append(index)
        callback_seconds += time.perf_counter() - started
        return keep_going

    def on_epoch_end() -> list[int]:
        nonlocal callback_seconds
        started = time.perf_counter()
        pruned = trials_to_prune(
            stack[0].study,
            [stack[index].trial for index in reported],
            completed=completed,
            reported={
                stack[index].number: dict(enumerate(stack[index].val_loss, start=1))
                for index in reported
            },
        )
        stopped = [index for index in reported if stack[index].number in pruned]
        for index in stopped:
            session = stack[index]
            session.prune_reason = (
                f"pruned at epoch {len(session.val_loss)}: cv val_loss "
                f"{session.val_loss[-1]:.4g} behind other trials"
            )
        reported.clear()
        callback_seconds += time.perf_counter() - started
        return stopped

    started = time.perf_counter()
    try:
        outcomes = problem.train(
            [session.config for session in stack],
            on_epoch=on_epoch,
            on_epoch_end=on_epoch_end,
            max_rows=row_ceiling,
        )
    except torch.OutOfMemoryError:
        outcomes = None  # handled below, once the error and the tensors it holds are gone
    finally:
        if clock is not None:
            clock.seconds += time.perf_counter() - started - callback_seconds
    if outcomes is None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        # Later steps hold at most half the rows this one tried; larger batches are chunked.
        batch_size = problem.resolved_batch_size(stack[0].config)
        tried = min(row_ceiling or 2**62, len(stack) * problem.n_folds * batch_size)
        row_ceiling = max(1, tried // 2)
        later = (
            f"later steps hold at most {row_ceiling} rows"
            if problem.fast
            else f"later stacks hold at most {row_ceiling} rows (fewer trials; a batch is not split)"
        )
        with _shield(stop):
            for session in stack:
                session.prune(
                    f"oom: out of device memory at batch_size={stack[0].params['batch_size']} "
                    f"({len(stack)} trials stacked); {later}"
                )
        return row_ceiling
    record_gradient_noise(stack[0].study, stack, outcomes, problem)
    with _shield(stop):  # recording a trial's end is not cut short by a second Ctrl-C
        for session, outcome in zip(stack, outcomes):
            session.finish(outcome)
    return row_ceiling


def _shield(stop: GracefulStop | None):  # noqa: ANN202 - a context manager
    return stop.shielded() if stop is not None else contextlib.nullcontext()
