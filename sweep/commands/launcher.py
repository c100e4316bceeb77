"""``sweep run --workers N`` / ``--gpus``: one worker process per GPU (or N on the CPU) sharing one
study. The launcher creates the study and its parent run once, starts ``sweep worker``
processes, shows one progress bar for all of them, and writes the summary when they are done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tqdm import tqdm

from sweep.commands.finish import close_study, end_status, sweep_outcome
from sweep.commands.stores import open_stores
from sweep.commands.terminal import print_summary, say
from sweep.locations import STORAGE_ENV, TRACKING_ENV
from sweep.outcome import RunPlan, SweepOutcome
from sweep.perf.fast_exit import flush_before_exit
from sweep.perf.phases import PHASES
from sweep.perf.worker_threads import worker_environment
from sweep.study.resume import counted_trials
from sweep.study.sqlite_tuning import tune_sqlite_connections


def worker_command(plan: RunPlan, device: str) -> list[str]:
    """The worker's argv. The stores' URLs are not in it: any user of the host can read a
    process's argv (``ps``), and a URL may carry a password; they go in :func:`worker_env`."""
    return [
        sys.executable,
        "-m",
        "sweep",
        "worker",
        "--study",
        plan.study_name,
        "--device",
        device,
        "--no-progress",
        # The study stores the space it was created with; this run's thread count may differ.
        *(["--threads", str(threads)] if (threads := plan.spec.training.threads) else []),
    ]


def worker_env(plan: RunPlan) -> dict[str, str]:
    """This process's environment, with the stores' URLs where the worker looks for them."""
    return {**os.environ, STORAGE_ENV: plan.storage_url, TRACKING_ENV: plan.tracking_uri}


def launch_workers(plan: RunPlan, *, workers: int, gpus: tuple[int, ...]) -> SweepOutcome:
    spec = plan.spec
    tune_sqlite_connections()
    with PHASES.phase("stores"):
        study, sink = open_stores(plan)
        flush_before_exit(sink.drain)
        sink.drain()
    done = counted_trials(study)
    count = len(gpus) or workers
    say(
        f"Study {plan.study_name!r}: {done}/{spec.budget.trials} trials done; starting {count} "
        f"worker(s) {'on GPUs ' + ','.join(map(str, gpus)) if gpus else 'on the CPU'}."
    )
    processes = []
    for index in range(count):
        env = worker_env(plan)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(gpus[index])
            device = "cuda"
        else:
            # The CPU's cores are shared out, so the workers do not oversubscribe them.
            env = worker_environment(env, count, threads=spec.training.threads)
            device = plan.device.type
        processes.append(subprocess.Popen(worker_command(plan, device), env=env))
    started = time.perf_counter()
    previous_term = signal.signal(signal.SIGTERM, _forward_to(processes))
    # Ctrl-C reaches the workers from the terminal itself; the launcher only waits for them.
    previous_int = signal.signal(signal.SIGINT, lambda *_: None)
    bar = tqdm(
        total=spec.budget.trials, initial=done, desc=f"study {plan.study_name}", unit="trial"
    )
    try:
        with PHASES.phase("workers"):  # their own training, Optuna and MLflow
            while any(process.poll() is None for process in processes):
                time.sleep(1.0)
                bar.n = counted_trials(study)
                bar.refresh()
    finally:
        bar.n = counted_trials(study)
        bar.close()
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    codes = [process.returncode for process in processes]
    status = end_status(study, spec.budget.trials, stopped=any(codes))
    with PHASES.phase("report"):
        report = close_study(study, sink, status)
    counted = report.snapshot.counted  # the study as the report read it, every worker gone
    ran = counted - done
    print_summary(report, ran=ran, seconds=time.perf_counter() - started)
    failed = [code for code in codes if code != 0]
    if failed and counted < spec.budget.trials:
        say(f"{len(failed)} worker(s) exited with status {failed}; rerun to resume the study.")
    elif failed:
        say(f"{len(failed)} worker(s) exited with status {failed}; the others met the budget.")
    return sweep_outcome(plan, sink, report, trials_run=ran, worker_exit_codes=tuple(codes))


def _forward_to(processes: list[subprocess.Popen]):  # noqa: ANN202 - a signal handler
    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    return forward
