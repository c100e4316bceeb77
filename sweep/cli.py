"""The ``sweep`` command. It only parses and delegates to :mod:`sweep.commands`; exit code 2 means
bad input. Each command's module is imported when the command runs, so ``sweep --help`` and a
mistyped flag answer without loading torch, Optuna or MLflow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sweep.errors import UsageError
from sweep.perf import fast_exit
from sweep.perf.phases import PHASES, count_imports

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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="create or resume a study and run its trials")
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
    _verbose_flag(run)

    run.add_argument(
        "--workers", type=int, default=1, help="worker processes on this host sharing the study"
    )
    run.add_argument(
        "--gpus", help="'all' or a list like 0,1: one worker per GPU (sets CUDA_VISIBLE_DEVICES)"
    )

    worker = commands.add_parser(
        "worker", help="join an existing study in shared storage and run its trials"
    )
    worker.add_argument("--study", required=True, help="the study to join")
    _storage_flag(worker)
    _tracking_flag(worker)
    worker.add_argument("--device", help="auto, cpu, cuda or mps (default: the study's)")
    worker.add_argument("--capture", help="off or compile (default: the study's)")
    _threads_flag(worker)
    worker.add_argument("--no-progress", action="store_true", help="no progress bar")
    _verbose_flag(worker)

    best = commands.add_parser("best", help="print or write a study's best config")
    best.add_argument("--study", required=True, help="study name")
    best.add_argument("--format", choices=("json", "yaml"), default="json")
    best.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    _storage_flag(best)

    report = commands.add_parser(
        "report", help="print a study's batch-size report, write its figures, log it to MLflow"
    )
    report.add_argument("--study", required=True, help="study name")
    _storage_flag(report)
    _tracking_flag(report)
    report.add_argument(
        "-o", "--output", type=Path, help="folder for the files (default: mlruns/reports/STUDY)"
    )

    ui_url = commands.add_parser(
        "ui-url", help="print the MLflow UI address of the newest study's runs"
    )
    ui_url.add_argument("--base", default="http://127.0.0.1:5000", help="where the UI listens")
    _tracking_flag(ui_url)
    return parser


def _verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="at the end, print where the process's time went (imports, stores, training, "
        "Optuna, MLflow, report)",
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
        help="Optuna storage URL (default: $SWEEP_STORAGE or sqlite:///mlruns/optuna.db)",
    )


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
    code = main()
    if _STORES_CLOSED:
        fast_exit.exit_now(code)
    return code


_STORES_CLOSED: list[bool] = []  # set when run or worker returned: its stores are drained


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        count_imports()
    try:
        if args.command in ("run", "worker"):
            code = _run(args) if args.command == "run" else _worker(args)
            _STORES_CLOSED.append(True)
            if args.verbose:
                print(PHASES.split(), flush=True)
            return code
        if args.command == "best":
            return _best(args)
        if args.command == "report":
            return _report(args)
        return _ui_url(args)
    except UsageError as err:
        print(f"sweep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from sweep.commands.run import RunOptions, run_sweep  # each command loads what it needs

    overrides = {
        key: (f"--{flag.replace('_', '-')}", getattr(args, flag))
        for flag, key in OVERRIDE_FLAGS.items()
        if getattr(args, flag) is not None
    }
    if args.seed is not None:  # one seed for the split, weights, shuffles and the sampler
        overrides["sampler.seed"] = ("--seed", args.seed)
    outcome = run_sweep(
        RunOptions(
            space=args.space,
            study=args.study,
            overrides=overrides,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            workers=args.workers,
            gpus=_gpu_list(args.gpus),
        )
    )
    if outcome.counted_trials < outcome.budget and any(outcome.worker_exit_codes):
        return 1  # workers died and the budget is not met: resume
    return 0


def _gpu_list(text: str | None) -> tuple[int, ...]:
    if text is None:
        return ()
    if text == "all":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--gpus all: no CUDA device is visible. Use --workers N on the CPU.")
        return tuple(range(torch.cuda.device_count()))
    try:
        gpus = tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise UsageError(f"--gpus {text!r}: use 'all' or indices like 0,1.") from err
    if any(gpu < 0 for gpu in gpus) or len(set(gpus)) != len(gpus):
        raise UsageError(f"--gpus {text!r}: indices must be distinct and >= 0.")
    return gpus


def _worker(args: argparse.Namespace) -> int:
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
    from sweep.locations import resolve_storage, resolve_tracking_uri

    run_report(
        args.study,
        storage_url=resolve_storage(args.storage),
        tracking_uri=resolve_tracking_uri(args.tracking_uri),
        output=args.output,
    )
    return 0


def _ui_url(args: argparse.Namespace) -> int:
    from sweep.commands.ui_url import ui_url

    print(ui_url(args.base, args.tracking_uri))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
