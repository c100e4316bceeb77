"""The protocol between the sweep and its tracking process, over a real pipe to a real MLflow
store: here the server runs on a thread of the test process (the fork itself is tested in
test_tracking_process.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from multiprocessing.connection import Pipe
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.commands.finish import reap
from sweep.errors import TrackingProcessError
from sweep.provenance.dataset_facts import DatasetFacts
from sweep.tracking.mlflow_sink import MlflowSink
from sweep.tracking.process_sink import ProcessSink
from sweep.tracking.tracking_process import TrackingProcess
from sweep.tracking.tracking_server import TrackingServer

FACTS = DatasetFacts("iris", "f00d", (150, 4), "<f4", (150,), "<i8")


@pytest.fixture
def process() -> Iterator[TrackingProcess]:
    """A tracking process whose server is a thread of this process."""
    ours, theirs = Pipe(duplex=True)
    server = threading.Thread(target=TrackingServer().serve, args=(theirs,), daemon=True)
    server.start()
    process = TrackingProcess(os.getpid(), ours)  # reaping our own pid is a no-op
    yield process
    process.close()
    server.join(timeout=30)
    assert not server.is_alive()


@pytest.mark.slow
def test_a_trial_s_run_goes_through_the_pipe(workdir: Path, process: TrackingProcess) -> None:
    tracking = f"sqlite:///{workdir}/mlflow.db"
    sink = ProcessSink(process, tracking, "piped", dataset=FACTS, space_file=None)
    parent = sink.open_study(existing_run_id=None, tags={"study": "piped"})
    handle = sink.start_trial(0, {"lr": 0.1}, {"study": "piped"})
    for step in range(3):
        sink.log_epoch(handle, step, {"val_loss": 1.0 / (step + 1)})
    run_id = sink.run_id(handle)
    sink.end_trial(handle, "FINISHED", metrics={"cv_val_loss": 0.3}, tags={"engine": "stacked"})
    sink.drain()

    client = MlflowClient(tracking)
    assert client.get_experiment(sink.experiment_id).name == "piped"
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params == {"lr": "0.1"} and run.data.tags["engine"] == "stacked"
    assert [m.value for m in client.get_metric_history(run_id, "val_loss")] == [1.0, 0.5, 1 / 3]
    assert run.inputs.dataset_inputs[0].dataset.digest == "f00d"


@pytest.mark.slow
def test_a_failed_write_that_nobody_waited_for_is_raised_at_the_next_call(
    workdir: Path, process: TrackingProcess
) -> None:
    sink = ProcessSink(
        process, f"sqlite:///{workdir}/mlflow.db", "e", dataset=None, space_file=None
    )
    sink.open_study(existing_run_id=None, tags={})
    sink.log_epoch("pending-never-started", 0, {"val_loss": 1.0})  # sent; fails over there
    with pytest.raises(TrackingProcessError, match="log_epoch: KeyError"):
        sink.drain()
    sink.drain()  # told once


@pytest.mark.slow
def test_reap_reads_the_trials_states_only_when_another_worker_left_a_run(
    workdir: Path, process: TrackingProcess
) -> None:
    tracking = f"sqlite:///{workdir}/mlflow.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{workdir}/optuna.db")
    sink = ProcessSink(process, tracking, "s", dataset=None, space_file=None)
    parent = sink.open_study(existing_run_id=None, tags={"study": "s"})
    reads: list[int] = []

    class CountingStudy:  # the study, counting how often the reaper reads its trials
        def get_trials(self, **kwargs):  # noqa: ANN003, ANN202
            reads.append(1)
            return study.get_trials(**kwargs)

    assert reap(CountingStudy(), sink) == 0 and reads == []  # nothing to reap: no read

    dead = MlflowSink(tracking, "s")  # a worker that died with its trial's run RUNNING
    dead.open_study(existing_run_id=parent, tags={"study": "s"})
    killed = study.ask()
    dead.run_id(dead.start_trial(killed.number, {}, {"study": "s"}))
    study.tell(killed, state=TrialState.FAIL)
    assert reap(CountingStudy(), sink) == 1 and reads == [1]
