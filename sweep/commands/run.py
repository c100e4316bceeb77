"""``sweep run`` and ``sweep worker``: validate everything, then create, resume or join the study
and run the trials.

Everything the user gave is checked before the first file, study or MLflow run is created, so a
typo costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from search_spaces import CAPTURE_MODES, SpaceError, SweepSpec, load_space
from sweep.commands.checks import load_inputs, quiet_library_logs
from sweep.errors import UsageError
from sweep.guards.store_checks import checked_stores
from sweep.guards.study_names import check_study_name
from sweep.outcome import RunPlan, SweepOutcome


@dataclass(frozen=True)
class RunOptions:
    """What ``sweep run`` was asked for; ``overrides`` maps dotted keys to (flag, value)."""

    space: str = "default"
    study: str | None = None
    overrides: dict[str, tuple[str, Any]] = field(default_factory=dict)
    storage: str | None = None
    tracking_uri: str | None = None
    workers: int = 1  # worker processes on this host (one per GPU with gpus)
    gpus: tuple[int, ...] = ()  # CUDA device indices, one worker each
    spec: SweepSpec | None = None  # a space validated already (sweep.run_sweep); then not `space`


@dataclass(frozen=True)
class WorkerOptions:
    """What ``sweep worker`` was asked for: join an existing study and run its trials."""

    study: str
    storage: str | None = None
    tracking_uri: str | None = None
    device: str | None = None  # default: the device the study's space names
    capture: str | None = None  # default: the study's; compiling depends on the host
    threads: str | None = None  # "auto" or an integer; default: the study's
    show_progress: bool = True


def run_sweep(options: RunOptions) -> SweepOutcome:
    """Validate, then run the study to its budget. Raises UsageError on any bad input."""
    if options.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {options.workers}.")
    check_study_name(options.study)
    plan = plan_run(options)
    quiet_library_logs()
    # Optuna, MLflow and matplotlib load only once the input is known to be valid.
    if options.workers > 1 or options.gpus:
        from sweep.commands.launcher import launch_workers

        return launch_workers(plan, workers=options.workers, gpus=options.gpus)
    from sweep.commands.in_process import run_in_process

    return run_in_process(plan)


def run_worker(options: WorkerOptions) -> SweepOutcome:
    """Join a study in shared storage and run trials until its budget is met by all workers."""
    from sweep.study.resume import load_spec  # Optuna: off the start-up path of other commands

    check_study_name(options.study)
    threads = None if options.threads is None else parse_threads(options.threads, flag="--threads")
    storage_url, tracking_uri = checked_stores(options.storage, options.tracking_uri)
    spec = load_spec(storage_url, options.study)
    # Workers sharing a study must not draw the same sequence of trials from the same seed.
    worker_seed = int.from_bytes(os.urandom(4), "big")
    spec = replace(spec, sampler=replace(spec.sampler, seed=worker_seed))
    if options.device is not None:
        spec = replace(spec, training=replace(spec.training, device=options.device))
    if options.capture is not None:
        if options.capture not in CAPTURE_MODES:
            raise UsageError(
                f"--capture {options.capture!r}: must be one of {', '.join(CAPTURE_MODES)}."
            )
        spec = replace(spec, training=replace(spec.training, capture=options.capture))
    if options.threads is not None:
        spec = replace(spec, training=replace(spec.training, threads=threads))
    flags = {"training.device": "--device"} if options.device else {}
    if options.capture:
        flags["training.capture"] = "--capture"
    inputs = load_inputs(spec, flags=flags)
    quiet_library_logs()
    from sweep.commands.in_process import run_in_process  # Optuna, MLflow: input is valid now

    plan = RunPlan(spec, inputs, options.study, storage_url, tracking_uri, resuming=True)
    return run_in_process(plan, show_progress=options.show_progress)


def parse_threads(text: str, *, flag: str) -> int | None:
    """``auto`` (None) or a thread count >= 1; anything else is a UsageError naming ``flag``."""
    if text == "auto":
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"{flag} {text!r}: must be auto or an integer >= 1, e.g. {flag} 1.")


def plan_run(options: RunOptions) -> RunPlan:
    """Every input of ``sweep run`` checked: the space, the data, the stores and, for an
    existing study, that it was made by the same space."""
    try:
        spec = options.spec or load_space(options.space, overrides=options.overrides)
    except SpaceError as err:
        raise UsageError(str(err)) from err
    flags = {key: flag for key, (flag, _value) in options.overrides.items()}
    inputs = load_inputs(spec, flags=flags)
    storage_url, tracking_uri = checked_stores(options.storage, options.tracking_uri)
    study_name = options.study or spec.name
    from sweep.study.resume import check_resumable  # Optuna: loaded once the input is valid

    resuming, storage = check_resumable(storage_url, study_name, spec)
    return RunPlan(
        spec, inputs, study_name, storage_url, tracking_uri, resuming=resuming, storage=storage
    )
