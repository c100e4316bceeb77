"""The ask/tell loop on its own: an in-memory study, an in-memory tracking sink and 60 rows of
synthetic data. Budget, stacking, pruning, divergence, out-of-memory, graceful stops and the race
for a study's last trial, each in well under a second."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

import trainers.engine
from search_spaces import load_space
from sweep.graceful_stop import GracefulStop
from sweep.study.trial_loop import TrainingClock
from sweep.study.trial_record import record_of
from sweep.study.trial_session import TrialSession
from sweep.tracking.memory_sink import MemorySink
from tests.sweep.loop_helpers import (
    FOLDS,
    PARENT_TAGS,
    RUN_STATUS_OF,
    TRAIN_ROWS,
    LoopWorld,
    loop_spec,
    loop_world,
    resolved,
)

# A loop that never meets its budget would ask forever: fail it instead.
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _assert_nothing_left_running(world: LoopWorld) -> None:
    assert not world.trials(TrialState.RUNNING, TrialState.WAITING)
    runs = world.sink.trial_runs()
    assert {number: run.status for number, run in runs.items()} == {
        trial.number: RUN_STATUS_OF[trial.state] for trial in world.trials()
    }


# -- budget and bookkeeping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trials", "group_size"),
    [(5, 4), (3, 1), (4, 8)],
    ids=["two-groups", "one-by-one", "one-group"],
)
def test_budget_is_met_exactly_with_one_run_per_trial(
    tmp_path: Path, trials: int, group_size: int
) -> None:
    spec = loop_spec(
        tmp_path,
        trials=trials,
        group_size=group_size,
        batch_sizes="[8, 16, full]",
        lrs="[0.003, 0.01, 0.1]",
    )
    world = loop_world(spec)
    final_params: dict[int, torch.Tensor] = {}
    clock = TrainingClock()
    world.run(final_params=final_params, clock=clock)

    assert len(world.trials()) == trials  # nothing asked beyond the budget
    assert world.states() == Counter({TrialState.COMPLETE: trials})
    assert sorted(world.ended) == list(range(trials))  # on_trial_end once per trial
    runs = world.sink.trial_runs()
    assert sorted(runs) == list(range(trials))
    for trial in world.trials():
        run, record = runs[trial.number], record_of(trial)
        assert run.status == "FINISHED"
        assert record.mlflow_run_id == run.run_id
        assert run.params["batch_size"] == str(trial.params["batch_size"])
        assert run.history("val_loss") == pytest.approx(record.val_loss_curve)
        assert len(record.val_loss_curve) == spec.training.epochs
        assert [step for step, _ in run.metrics["val_loss"]] == [1, 2]
        assert trial.value == pytest.approx(record.cv_val_loss)
        assert run.history("cv_val_loss") == pytest.approx([trial.value])
        assert final_params[trial.number].shape[0] > 0  # fold 0's weights, for the report
    assert clock.seconds > 0
    parent = world.sink.parent  # the loop writes only to the trials' runs
    assert (parent.status, parent.metrics, parent.params) == ("RUNNING", {}, {})
    assert parent.tags == PARENT_TAGS


def test_a_study_already_at_its_budget_asks_nothing(tmp_path: Path) -> None:
    world = loop_world(loop_spec(tmp_path, trials=2))
    world.run()
    world.run()  # a resume of a finished study
    assert len(world.trials()) == 2 and len(world.sink.trial_runs()) == 2


def test_grid_budget_is_capped_at_the_grid_size(tmp_path: Path) -> None:
    world = loop_world(loop_spec(tmp_path, trials=10, batch_sizes="[8, full]", lrs="[0.01]"))
    world.run()
    assert world.states() == Counter({TrialState.COMPLETE: 2})
    assert {trial.params["batch_size"] for trial in world.trials()} == {8, "full"}


# -- stacking ------------------------------------------------------------------------------------


def test_trials_stack_by_resolved_batch_size_within_a_group(tmp_path: Path) -> None:
    # 64 and full both mean all 40 rows of a fold: they share batches, so they share a stack.
    spec = loop_spec(
        tmp_path, trials=8, group_size=4, batch_sizes="[8, 16, 64, full]", lrs="[0.01, 0.1]"
    )
    world = loop_world(spec)
    world.run()

    trials = world.trials()
    assert world.states() == Counter({TrialState.COMPLETE: 8})
    groups = [trials[:4], trials[4:]]  # one worker: each group holds consecutive numbers
    stack_sizes = [record_of(trial).stack_size for trial in trials]
    assert max(stack_sizes) > 1, f"the grid's order stacks nothing: {stack_sizes}"
    for group in groups:
        asked = Counter(resolved(trial.params["batch_size"]) for trial in group)
        for trial in group:
            rows = resolved(trial.params["batch_size"])
            record = record_of(trial)
            assert record.stack_size == asked[rows], (trial.number, trial.params)
            assert record.resolved_batch_size == rows
            run = world.sink.trial_runs()[trial.number]
            assert {value for _epoch, value in run.metrics["stack_size"]} == {asked[rows]}
        # Stacks train smallest batch first; on_trial_end follows.
        ended = [number for number in world.ended if number in {t.number for t in group}]
        by_number = {trial.number: trial for trial in group}
        ended_rows = [resolved(by_number[number].params["batch_size"]) for number in ended]
        assert ended_rows == sorted(ended_rows)


def test_stacked_trials_train_as_they_would_alone(tmp_path: Path) -> None:
    stacked = loop_world(loop_spec(tmp_path, trials=2, group_size=2, batch_sizes="[8]"))
    alone = loop_world(loop_spec(tmp_path, trials=2, group_size=1, batch_sizes="[8]"))
    stacked.run()
    alone.run()
    by_lr = {}
    for world in (stacked, alone):
        for trial in world.trials():
            by_lr.setdefault(trial.params["lr"], []).append(record_of(trial))
    for together, single in by_lr.values():
        assert (together.stack_size, single.stack_size) == (2, 1)
        assert together.val_loss_curve == pytest.approx(single.val_loss_curve, rel=1e-5)


# -- pruning, divergence, out of memory ----------------------------------------------------------


def _five_learners_then_a_laggard(tmp_path: Path, *, group_size: int):
    """Six SGD trials run under the median pruner: five learn (LR 0.1), the last barely moves
    (LR 1e-5)."""
    spec = loop_spec(
        tmp_path,
        trials=6,
        group_size=group_size,
        epochs=4,
        batch_sizes="[8]",
        lrs="[1.0e-5, 0.1]",
        sampler="random",
        pruner="median",
    )
    world = loop_world(spec)
    for lr in [0.1] * 5 + [1e-5]:
        world.study.enqueue_trial({"batch_size": 8, "optimizer": "sgd", "lr": lr})
    world.run()
    return world


def test_median_pruner_prunes_the_trial_behind_the_others(tmp_path: Path) -> None:
    # Five trials learn (the median pruner's startup trials); then one whose LR barely moves it.
    world = _five_learners_then_a_laggard(tmp_path, group_size=1)

    *learners, laggard = world.trials()
    assert [trial.state for trial in learners] == [TrialState.COMPLETE] * 5
    assert laggard.state == TrialState.PRUNED
    reason = record_of(laggard).prune_reason
    assert reason.startswith("pruned at epoch 1: cv val_loss")
    assert record_of(laggard).val_loss_curve == [laggard.intermediate_values[1]]
    run = world.sink.trial_runs()[laggard.number]
    assert (run.status, run.tags["prune_reason"]) == ("KILLED", reason)
    assert len(run.history("val_loss")) == 1  # it stopped after the epoch it was pruned at
    assert laggard.number in world.ended
    _assert_nothing_left_running(world)


def test_a_trial_without_completed_peers_is_not_pruned(tmp_path: Path) -> None:
    """All six in one stack: no trial is COMPLETE while they train, so the pruner keeps all."""
    world = _five_learners_then_a_laggard(tmp_path, group_size=6)
    assert world.states() == Counter({TrialState.COMPLETE: 6})


def test_a_diverging_trial_is_pruned_and_its_stack_mates_complete(tmp_path: Path) -> None:
    world = loop_world(loop_spec(tmp_path, trials=2, batch_sizes="[8]", lrs="[0.01, 1.0e6]"))
    world.run()

    by_lr = {trial.params["lr"]: trial for trial in world.trials()}
    diverged, sane = by_lr[1e6], by_lr[0.01]
    assert diverged.state == TrialState.PRUNED  # never FAIL: TPE learns from pruned trials
    assert record_of(diverged).prune_reason.startswith("diverged:")
    run = world.sink.trial_runs()[diverged.number]
    assert run.tags["prune_reason"] == record_of(diverged).prune_reason
    assert sane.state == TrialState.COMPLETE
    assert record_of(sane).stack_size == 2
    _assert_nothing_left_running(world)


DEVICE_ROWS = 2 * FOLDS * TRAIN_ROWS // 2  # the pretend device holds one stack of two, halved


@pytest.fixture
def small_device(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """loss_and_grad raises OutOfMemoryError above DEVICE_ROWS (model, sample) rows per call;
    returns the row counts it was called with."""
    real = trainers.engine.loss_and_grad
    calls: list[int] = []

    def loss_and_grad(model, flat, inputs: torch.Tensor, *args, **kwargs):  # noqa: ANN001
        rows = inputs.shape[0] * inputs.shape[1]
        calls.append(rows)
        if rows > DEVICE_ROWS:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(model, flat, inputs, *args, **kwargs)

    monkeypatch.setattr(trainers.engine, "loss_and_grad", loss_and_grad)
    return calls


def test_oom_on_the_generic_engine_stacks_fewer_trials_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generic engine does not split a batch: after an out-of-memory error the trials of a
    stack train in smaller stacks, and the prune reason says so."""
    import trainers.module_engine._program as module_program
    import trainers.module_engine._stack as module_stack
    import trainers.problem as problem_module
    from trainers.module_engine.noise import NoiseNotMeasured

    spec = loop_spec(
        tmp_path, trials=4, group_size=2, batch_sizes="[full]", lrs="[0.001, 0.003, 0.01, 0.1]"
    )
    space = tmp_path / "loop.yaml"
    space.write_text(space.read_text() + "metric: mae\n")  # not the usual metric: generic engine
    spec = load_space(str(space))
    real = module_stack.ModuleStack.loss_and_grad
    calls: list[int] = []

    def loss_and_grad(self, flat, state, inputs, *args, **kwargs):  # noqa: ANN001
        calls.append(inputs.shape[0] * inputs.shape[1])
        if calls[-1] > DEVICE_ROWS:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(self, flat, state, inputs, *args, **kwargs)

    monkeypatch.setattr(module_stack.ModuleStack, "loss_and_grad", loss_and_grad)
    real_program = module_program.StackedProgram.loss_and_grad

    def program_loss_and_grad(self, views, fold_inputs, targets, *args, **kwargs):  # noqa: ANN001
        calls.append(targets.shape[0] * targets.shape[1])  # (models, batch): the MLP compiles
        if calls[-1] > DEVICE_ROWS:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real_program(self, views, fold_inputs, targets, *args, **kwargs)

    monkeypatch.setattr(module_program.StackedProgram, "loss_and_grad", program_loss_and_grad)

    def unmeasured(*args, **kwargs):  # noqa: ANN002, ANN003
        raise NoiseNotMeasured("not measured here: its steps would count as training's")

    monkeypatch.setattr(problem_module, "module_noise_scales", unmeasured)
    world = loop_world(spec)
    assert not world.problem.fast
    world.run()

    first, second = world.trials()[:2], world.trials()[2:]
    for trial in first:  # 2 trials x 3 folds x 40 rows = 240 rows per step: more than 120
        assert trial.state == TrialState.PRUNED
        assert "later stacks hold at most 120 rows" in record_of(trial).prune_reason
    for trial in second:  # one trial at a time: 3 folds x 40 rows = 120 rows
        assert trial.state == TrialState.COMPLETE
        assert record_of(trial).stack_size == 1
    over = [i for i, rows in enumerate(calls) if rows > DEVICE_ROWS]
    assert len(over) == 1 and max(calls[over[0] + 1 :]) == DEVICE_ROWS, calls


def test_oom_prunes_the_stack_then_later_trials_fit_by_chunking(
    tmp_path: Path, small_device: list[int]
) -> None:
    spec = loop_spec(
        tmp_path, trials=4, group_size=2, batch_sizes="[full]", lrs="[0.001, 0.003, 0.01, 0.1]"
    )
    world = loop_world(spec)
    world.run()

    first, second = world.trials()[:2], world.trials()[2:]
    for trial in first:  # 2 trials x 3 folds x 40 rows = 240 rows per step: more than 120
        assert trial.state == TrialState.PRUNED
        reason = record_of(trial).prune_reason
        assert reason.startswith("oom: out of device memory at batch_size=full (2 trials stacked)")
        assert "at most 120 rows" in reason
        assert world.sink.trial_runs()[trial.number].tags["prune_reason"] == reason
    for trial in second:  # half of 240 rows fits: two chunks of 20 rows per fold and step
        assert trial.state == TrialState.COMPLETE
        assert record_of(trial).chunks_per_step == 2
        assert record_of(trial).stack_size == 2
    assert max(small_device[1:]) == DEVICE_ROWS  # nothing but the first call went over
    assert sorted(world.ended) == [0, 1, 2, 3]  # pruned by OOM is an end like any other
    _assert_nothing_left_running(world)


# -- graceful stop and a second signal ------------------------------------------------------------


def _stop_after_first_trial(stop: GracefulStop) -> Callable[[optuna.Study, TrialSession], None]:
    def on_end(_study: optuna.Study, _session: TrialSession) -> None:
        if stop.requested is None:
            stop._handle(signal.SIGINT, None)

    return on_end


def test_a_stop_between_stacks_fails_the_stacks_not_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three batch sizes, one group: three stacks, trained smallest batch first.
    spec = loop_spec(tmp_path, trials=6, group_size=3, batch_sizes="[8, 16, full]", lrs="[0.01]")
    world = loop_world(spec)
    stop = GracefulStop()
    world.on_end = _stop_after_first_trial(stop)
    world.run(stop=stop)

    assert "SIGINT: finishing the current epoch" in capsys.readouterr().err
    assert len(world.trials()) == 3  # the loop returned instead of asking for more
    done, *not_started = sorted(world.trials(), key=lambda t: resolved(t.params["batch_size"]))
    assert done.state == TrialState.COMPLETE and done.params["batch_size"] == 8
    assert world.ended == [done.number]
    for trial in not_started:
        assert trial.state == TrialState.FAIL  # FAILED does not count: a resume runs it again
        run = world.sink.trial_runs()[trial.number]
        assert run.tags["fail_reason"] == "not started: stopped by SIGINT"
    _assert_nothing_left_running(world)


class _SignalSink(MemorySink):
    """A sink that delivers ``signals`` SIGINTs to ``stop`` from inside one of its methods, the
    ``at``-th time that method is called: a Ctrl-C landing in the middle of the loop's work."""

    def __init__(self, stop: GracefulStop, *, method: str, at: int = 1, signals: int) -> None:
        super().__init__()
        self.open_study(existing_run_id=None, tags=PARENT_TAGS)
        self.stop, self.method, self.at, self.signals = stop, method, at, signals
        self.calls: Counter[str] = Counter()

    def _maybe_signal(self, method: str) -> None:
        self.calls[method] += 1
        if method == self.method and self.calls[method] == self.at:
            for _ in range(self.signals):
                self.stop._handle(signal.SIGINT, None)

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        run_id = super().start_trial(number, params, tags)
        self._maybe_signal("start_trial")
        return run_id

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        super().log_epoch(run_id, step, metrics)
        self._maybe_signal("log_epoch")

    def end_trial(self, run_id: str, status: str, **kwargs: Any) -> None:
        self._maybe_signal("end_trial")
        super().end_trial(run_id, status, **kwargs)


def test_a_stop_during_an_epoch_prunes_the_stack_after_that_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = loop_spec(tmp_path, trials=6, group_size=3, batch_sizes="[8, 16, full]", lrs="[0.01]")
    stop = GracefulStop()
    world = loop_world(spec, sink=_SignalSink(stop, method="log_epoch", signals=1))
    world.run(stop=stop)

    first, *not_started = sorted(world.trials(), key=lambda t: resolved(t.params["batch_size"]))
    assert first.state == TrialState.PRUNED
    assert record_of(first).prune_reason == "stopped by SIGINT after epoch 1"
    assert len(record_of(first).val_loss_curve) == 1
    assert [trial.state for trial in not_started] == [TrialState.FAIL, TrialState.FAIL]
    _assert_nothing_left_running(world)


@pytest.mark.parametrize(
    ("method", "at"),
    [("start_trial", 2), ("log_epoch", 1), ("end_trial", 1)],
    ids=["while-asking", "while-training", "while-recording"],
)
def test_a_second_signal_interrupts_but_leaves_nothing_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str, at: int
) -> None:
    spec = loop_spec(
        tmp_path, trials=6, group_size=4, batch_sizes="[8, full]", lrs="[0.003, 0.01, 0.1]"
    )
    stop = GracefulStop()
    sink = _SignalSink(stop, method=method, at=at, signals=2)
    world = loop_world(spec, sink=sink)
    with pytest.raises(KeyboardInterrupt):
        world.run(stop=stop)

    assert stop.requested == "SIGINT" and not stop._interrupt_pending
    assert world.trials(), "the signals came after the first trial was asked"
    assert all(
        trial.state in (TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE)
        for trial in world.trials()
    )
    _assert_nothing_left_running(world)
    for run in sink.trial_runs().values():
        if run.status == "FAILED":
            assert run.tags["fail_reason"].startswith("KeyboardInterrupt")


def test_a_second_signal_while_recording_lets_the_whole_stack_be_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The signals arrive while the first trial of a stack of two is being recorded: both are
    recorded COMPLETE before the interrupt, and only the stack not started is FAILED."""
    spec = loop_spec(tmp_path, trials=3, group_size=3, batch_sizes="[8, full]", lrs="[0.01, 0.1]")
    stop = GracefulStop()
    sink = _SignalSink(stop, method="end_trial", signals=2)
    world = loop_world(spec, sink=sink)
    with pytest.raises(KeyboardInterrupt):
        world.run(stop=stop)

    by_rows = Counter(resolved(trial.params["batch_size"]) for trial in world.trials())
    small = min(by_rows)
    for trial in world.trials():
        first_stack = resolved(trial.params["batch_size"]) == small
        expected = TrialState.COMPLETE if first_stack else TrialState.FAIL
        assert trial.state == expected, (trial.number, trial.params)
    assert world.ended == []  # the interrupt came before on_trial_end
    _assert_nothing_left_running(world)


# -- two workers race for the study's last trial ---------------------------------------------------


def test_the_worker_that_asks_last_gives_its_trial_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A finds one trial left and asks for it; between the two, worker B ran the whole
    study. A's trial has the higher number and is given back: the budget stays exact."""
    spec = loop_spec(
        tmp_path, trials=1, group_size=1, batch_sizes="[8]", lrs="[0.01]", sampler="random"
    )
    world_a = loop_world(spec)
    world_b = loop_world(spec)
    world_b.study = optuna.load_study(
        study_name=world_a.study.study_name, storage=world_a.study._storage
    )
    real_ask = world_a.study.ask

    def ask_after_the_other_worker(*args: Any, **kwargs: Any) -> optuna.Trial:
        if not world_b.trials():
            world_b.run()
        return real_ask(*args, **kwargs)

    monkeypatch.setattr(world_a.study, "ask", ask_after_the_other_worker)
    world_a.run()

    trials = world_a.trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert "surplus" in trials[1].user_attrs
    assert sorted(world_b.sink.trial_runs()) == [0]
    assert world_a.sink.trial_runs() == {}  # the given-back trial never started a run
    assert world_a.ended == [] and world_b.ended == [0]


def test_a_trial_another_worker_is_running_counts_toward_the_budget(tmp_path: Path) -> None:
    spec = loop_spec(
        tmp_path, trials=2, group_size=4, batch_sizes="[8]", lrs="[0.01, 0.1]", sampler="random"
    )
    world = loop_world(spec)
    elsewhere = world.study.ask()  # another worker's trial, RUNNING while this one works
    world.run()
    assert world.states() == Counter({TrialState.COMPLETE: 1, TrialState.RUNNING: 1})
    assert elsewhere.number not in world.sink.trial_runs()
    world.study.tell(elsewhere, state=TrialState.FAIL)  # it died: the next run replaces it
    world.run()
    assert world.states() == Counter({TrialState.COMPLETE: 2, TrialState.FAIL: 1})


def test_failed_trials_do_not_make_a_new_trial_surplus(tmp_path: Path) -> None:
    """Trial numbers count failed trials too; only COMPLETE, PRUNED and RUNNING ones fill the
    budget, so a study whose first trials failed still runs its budget."""
    spec = loop_spec(
        tmp_path, trials=2, group_size=1, batch_sizes="[8]", lrs="[0.01, 0.1]", sampler="random"
    )
    world = loop_world(spec)
    for _ in range(3):
        world.study.tell(world.study.ask(), state=TrialState.FAIL)
    world.run()
    assert world.states() == Counter({TrialState.FAIL: 3, TrialState.COMPLETE: 2})
    assert not any("surplus" in trial.user_attrs for trial in world.trials())


class _BrokenTrackingSink(MemorySink):
    """The tracking store goes away while the second trial of a group starts its run."""

    def __init__(self) -> None:
        super().__init__()
        self.open_study(existing_run_id=None, tags=PARENT_TAGS)
        self.started = 0

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        self.started += 1
        if self.started == 2:
            raise ConnectionError("the tracking server went away")
        return super().start_trial(number, params, tags)


def test_a_trial_whose_run_cannot_start_is_not_left_running(tmp_path: Path) -> None:
    world = loop_world(loop_spec(tmp_path, trials=4, group_size=4), sink=_BrokenTrackingSink())
    with pytest.raises(ConnectionError):
        world.run()
    assert not world.trials(TrialState.RUNNING)
