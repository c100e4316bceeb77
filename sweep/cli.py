"""The ``sweep`` command. It only parses and delegates to :mod:`sweep.commands`; exit code 2 means
bad input. Each command's module is imported when the command runs, so ``sweep --help`` and a
mistyped flag answer without loading torch, Optuna or MLflow."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sweep.errors import TrackingProcessError, UsageError
from sweep.guards.study_names import check_study_name
from sweep.perf import fast_exit
from sweep.perf.phases import PHASES, count_imports
from sweep.provenance.redact import redact_text

# flag -> dotted key of the search-space YAML it overrides
OVERRIDE_FLAGS = {
    "trials": "budget.trials",
    "epochs": "training.epochs",
    "folds": "cv.folds",
    "dataset": "dataset.source",
    "target": "dataset.target",
    "device": "training.device",
    "precision": "training.precision",
    "capture": "training.capture",
    "threads": "training.threads",
    "seed": "cv.seed",
    "group_size": "budget.group_size",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweep",
        description="Choose batch size, learning rate and optimizer by k-fold CV (Optuna + MLflow).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _verbosity_flags(parser, default=0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # -v / -q are accepted after the command too; there they do not reset what came before it.
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_flags(common, default=argparse.SUPPRESS)

    run = commands.add_parser(
        "run", parents=[common], help="create or resume a study and run its trials"
    )
    run.add_argument(
        "--space", default="default", help="bundled space name or YAML path (default: default)"
    )
    run.add_argument(
        "--study", help="study name (default: the space's name); an existing study resumes"
    )
    run.add_argument("--trials", type=int, help="finished trials the study should hold")
    run.add_argument("--epochs", type=int, help="epochs per fold")
    run.add_argument("--folds", type=int, help="k of k-fold cross-validation")
    run.add_argument("--dataset", help="named data set (synthetic, diabetes, ...) or a CSV path")
    run.add_argument("--target", help="target column of a CSV data set")
    run.add_argument("--device", help="auto, cpu, cuda or mps")
    run.add_argument(
        "--precision", help="fp32 (default) or bf16: matmuls in bfloat16, weights stay float32"
    )
    run.add_argument(
        "--capture",
        help="off (default) or compile: each step through torch.compile (CUDA graphs on CUDA)",
    )
    _threads_flag(run)
    run.add_argument(
        "--group-size",
        type=int,
        help="trials asked at once; those sharing a batch size train stacked (default 8)",
    )
    run.add_argument(
        "--seed", type=int, help="seed of the CV split, initial weights, shuffles and the sampler"
    )
    _storage_flag(run)
    _tracking_flag(run)

    run.add_argument(
        "--workers", type=int, default=1, help="worker processes on this host sharing the study"
    )
    run.add_argument(
        "--gpus", help="'all' or a list like 0,1: one worker per GPU (sets CUDA_VISIBLE_DEVICES)"
    )

    worker = commands.add_parser(
        "worker",
        parents=[common],
        help="join an existing study in shared storage and run its trials",
    )
    worker.add_argument("--study", required=True, help="the study to join")
    _storage_flag(worker)
    _tracking_flag(worker)
    worker.add_argument("--device", help="auto, cpu, cuda or mps (default: the study's)")
    worker.add_argument("--capture", help="off or compile (default: the study's)")
    _threads_flag(worker)
    worker.add_argument("--no-progress", action="store_true", help="no progress bar")

    best = commands.add_parser(
        "best", parents=[common], help="print or write a study's best config"
    )
    best.add_argument("--study", required=True, help="study name")
    best.add_argument("--format", choices=("json", "yaml"), default="json")
    best.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    _storage_flag(best)

    report = _stored_study_command(
        commands,
        common,
        "report",
        "print a study's batch-size report, write its figures, log it to MLflow",
    )
    report.add_argument(
        "-o", "--output", type=Path, help="folder for the files (default: mlruns/reports/STUDY)"
    )

    refit = _stored_study_command(
        commands,
        common,
        "refit",
        "train a study's recommended config on all the data; save and log the model",
    )
    refit.add_argument(
        "-o",
        "--output",
        type=Path,
        help="state dict file, .pt or .pth (default: mlruns/models/STUDY.pt)",
    )

    ui_url = commands.add_parser(
        "ui-url", parents=[common], help="print the MLflow UI address of the newest study's runs"
    )
    ui_url.add_argument("--base", default="http://127.0.0.1:5000", help="where the UI listens")
    _tracking_flag(ui_url)
    return parser


def set_log_level(verbosity: int) -> None:
    """The ``sweep`` logger's level from ``-v`` (positive) and ``-q`` (negative): INFO by
    default, DEBUG with -v, WARNING with -q, ERROR with -qq. Its handler is set up by
    :func:`sweep.commands.terminal.say`, which writes the messages."""
    levels = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}
    logging.getLogger("sweep").setLevel(levels.get(max(-2, verbosity), logging.DEBUG))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchsweep")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown (not installed)"


def _verbosity_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="count",
        default=default,
        help="more messages (debug); run and worker also print where the time went",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        dest="quiet",
        action="count",
        default=default,
        help="fewer messages: -q warnings and errors only, -qq errors only",
    )


def _threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        help="torch's CPU threads: auto (default: one for small stacks, more for large steps) "
        "or an integer >= 1",
    )


def _storage_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: $SWEEP_STORAGE, $OPTUNA_STORAGE or "
        "sqlite:///mlruns/optuna.db)",
    )


def _stored_study_command(
    commands: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
) -> argparse.ArgumentParser:
    """A sub-command that reads a stored study: its ``--study``, ``--storage`` and
    ``--tracking-uri``."""
    parser = commands.add_parser(name, parents=[common], help=help_text)
    parser.add_argument("--study", required=True, help="study name")
    _storage_flag(parser)
    _tracking_flag(parser)
    return parser


def _tracking_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)",
    )


def entry() -> int:
    """The ``sweep`` program: :func:`main`, then, after ``run`` and ``worker``, the process
    ends without the interpreter's teardown (:mod:`sweep.perf.fast_exit`) once their stores are
    drained. A traceback (a bug) still takes the ordinary exit."""
    fast_exit.arm()
    _FORKS_TRACKING.append(True)
    code = main()
    if _STORES_CLOSED:
        fast_exit.exit_now(code)
    return code


_STORES_CLOSED: list[bool] = []  # set when run or worker returned: its stores are drained
_FORKS_TRACKING: list[bool] = []  # set by the ``sweep`` program: run and worker fork MLflow off


def _start_tracking_process() -> None:
    """In the ``sweep`` program, ``run`` and ``worker`` fork their tracking process once their
    arguments are checked, before torch, scikit-learn, Optuna and MLflow load
    (:mod:`sweep.tracking.tracking_process`), when two cores are free
    (:mod:`sweep.perf.spare_cores`). ``SWEEP_TRACKING_PROCESS=1`` forks it always, ``0``
    never (MLflow then runs in this process)."""
    setting = os.environ.get("SWEEP_TRACKING_PROCESS", "auto")
    if setting not in ("auto", "0", "1"):
        raise UsageError(
            f"SWEEP_TRACKING_PROCESS={setting!r}: must be auto, 1 (always) or 0 (never); "
            "unset it for auto."
        )
    if not _FORKS_TRACKING or setting == "0":
        return
    from sweep.perf.spare_cores import spare_cores, worth_a_second_process

    spare = spare_cores()
    if setting == "auto" and not worth_a_second_process(spare):
        logging.getLogger("sweep").debug(
            "MLflow runs in this process: %.0f core(s) free, the tracking process needs 2", spare
        )
        return
    from sweep.tracking import tracking_process

    process = tracking_process.start()
    if process is not None:
        fast_exit.flush_before_exit(process.close)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbosity = getattr(args, "verbosity", 0) - getattr(args, "quiet", 0)
    set_log_level(verbosity)
    if verbosity > 0:
        count_imports()
    try:
        check_study_name(getattr(args, "study", None))  # before any store or heavy library
        if args.command in ("run", "worker"):
            code = _run(args) if args.command == "run" else _worker(args)
            _STORES_CLOSED.append(True)
            if verbosity > 0:  # -v: where the process's time went
                print(PHASES.split(), flush=True)
            return code
        if args.command == "best":
            return _best(args)
        if args.command == "report":
            return _report(args)
        if args.command == "refit":
            return _refit(args)
        return _ui_url(args)
    except UsageError as err:
        print(f"sweep {args.command}: error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except TrackingProcessError as err:  # killed from outside, mid-sweep: say so in one line
        print(f"sweep {args.command}: error: {redact_text(str(err))}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from search_spaces import SpaceError, load_space
    from sweep.guards.gpus import parse_gpus

    overrides = {
        key: (f"--{flag.replace('_', '-')}", getattr(args, flag))
        for flag, key in OVERRIDE_FLAGS.items()
        if getattr(args, flag) is not None
    }
    if args.seed is not None:  # one seed for the split, weights, shuffles and the sampler
        overrides["sampler.seed"] = ("--seed", args.seed)
    try:  # a bad space is refused in milliseconds, before torch, Optuna and MLflow load
        spec = load_space(args.space, overrides=overrides)
    except SpaceError as err:
        raise UsageError(str(err)) from err
    gpus = parse_gpus(args.gpus)
    _start_tracking_process()
    from sweep.commands.run import RunOptions, run_sweep  # each command loads what it needs

    outcome = run_sweep(
        RunOptions(
            space=args.space,
            spec=spec,
            study=args.study,
            overrides=overrides,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            workers=args.workers,
            gpus=gpus,
        )
    )
    if outcome.counted_trials < outcome.budget and any(outcome.worker_exit_codes):
        return 1  # workers died and the budget is not met: resume
    return 0


def _worker(args: argparse.Namespace) -> int:
    _start_tracking_process()
    from sweep.commands.run import WorkerOptions, run_worker

    run_worker(
        WorkerOptions(
            study=args.study,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            device=args.device,
            capture=args.capture,
            threads=args.threads,
            show_progress=not args.no_progress,
        )
    )
    return 0


def _best(args: argparse.Namespace) -> int:
    from sweep.commands.best import export_best

    export_best(args.study, storage=args.storage, output=args.output, fmt=args.format)
    return 0


def _report(args: argparse.Namespace) -> int:
    from sweep.commands.report import run_report

    run_report(args.study, **_stores(args), output=args.output)
    return 0


def _refit(args: argparse.Namespace) -> int:
    from sweep.models.refit_command import run_refit

    run_refit(args.study, **_stores(args), output=args.output)
    return 0


def _stores(args: argparse.Namespace) -> dict[str, str]:
    """The Optuna storage and MLflow tracking URLs a command was given, or their defaults."""
    from sweep.locations import resolve_storage, resolve_tracking_uri

    return {
        "storage_url": resolve_storage(args.storage),
        "tracking_uri": resolve_tracking_uri(args.tracking_uri),
    }


def _ui_url(args: argparse.Namespace) -> int:
    from sweep.commands.ui_url import ui_url

    print(ui_url(args.base, args.tracking_uri))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
