"""Benchmark of the training engine: the same grid of configs trained three ways, side by side.

1. ``naive``: what a user writes from the tutorials: a DataLoader per fold, folds one after another,
   one ``nn.Module`` and one ``torch.optim`` optimizer per model, ``loss.item()`` every batch.
2. ``fold-parallel``: each config's k folds stacked into one model (``train_folds``).
3. ``fold+trial-parallel``: every config sharing a batch size stacked too (``train_stack``).

torch, numpy and scikit-learn only, so it also runs on a GPU box without Optuna or MLflow:
``python -m trainers.benchmark --device cuda``. ``make bench`` adds the sweep's own overhead.

``--compile`` adds way 3 with the step compiled (``capture="compile"``; CUDA graphs on CUDA),
timed with its compiling and again warm; ``--bf16`` adds way 3 in bf16 mixed precision;
``--batch32`` prints the samples/s of a 16-trial stack at batch 32. ``make bench-gpu`` passes all
three.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainers.data import Dataset, load_dataset
from trainers.device import resolve_device
from trainers.engine import stack_key, train_folds, train_stack
from trainers.fold_data import FoldData, prepare_folds
from trainers.folds import Fold, fit_fold_scaling, make_folds
from trainers.stacked_mlp import MLPConfig, build_mlp
from trainers.stacked_optim import OptimizerConfig
from trainers.train_config import TrainConfig


@dataclass(frozen=True)
class BenchCase:
    """One data set and the grid trained on it."""

    name: str
    n_samples: int
    n_features: int
    epochs: int
    batch_sizes: tuple[int | None, ...]  # None is full-batch
    learning_rates: tuple[float, ...] = (1e-3, 1e-2)
    optimizers: tuple[str, ...] = ("sgd", "adam")
    n_folds: int = 5
    hidden: tuple[int, ...] = (50,)

    def configs(self) -> list[TrainConfig]:
        return [
            TrainConfig(
                batch_size=batch_size,
                epochs=self.epochs,
                optimizer=OptimizerConfig(name, lr),
                model=MLPConfig(self.hidden),
            )
            for batch_size, lr, name in itertools.product(
                self.batch_sizes, self.learning_rates, self.optimizers
            )
        ]


SMALL = BenchCase("synthetic 1000x10", 1000, 10, epochs=20, batch_sizes=(1, 16, 64, None))
LARGE = BenchCase("synthetic 100000x50", 100_000, 50, epochs=1, batch_sizes=(64, 256, 1024, None))


@dataclass(frozen=True)
class WayTiming:
    way: str
    seconds: float
    samples: int  # training samples processed, summed over every model

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds


def naive_loop(
    dataset: Dataset, folds: list[Fold], configs: list[TrainConfig], device: torch.device
) -> None:
    """The tutorial loop, fold after fold, config after config."""
    scaling = fit_fold_scaling(dataset, folds)
    classification = dataset.task == "classification"
    loss_fn = torch.nn.CrossEntropyLoss() if classification else torch.nn.MSELoss()
    n_outputs = dataset.n_classes if classification else 1
    for config in configs:
        for k, fold in enumerate(folds):
            x = torch.from_numpy((dataset.X - scaling.x_mean[k]) / scaling.x_std[k]).float()
            if classification:
                y = torch.from_numpy(dataset.y).long()
            else:
                y = torch.from_numpy((dataset.y - scaling.y_mean[k]) / scaling.y_std[k]).float()
            train = TensorDataset(x[fold.train_idx], y[fold.train_idx])
            batch_size = config.batch_size or len(train)
            loader = DataLoader(
                train,
                batch_size=batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(config.seed),
            )
            x_val, y_val = x[fold.val_idx].to(device), y[fold.val_idx].to(device)
            model = build_mlp(dataset.n_features, n_outputs, config.model).to(device)
            optimizer = config.optimizer.torch_class()(
                model.parameters(), **config.optimizer.torch_kwargs()
            )
            for _ in range(config.epochs):
                model.train()
                epoch_loss = 0.0
                for xb, yb in loader:
                    xb, yb = xb.to(device), yb.to(device)
                    optimizer.zero_grad()
                    out = model(xb)
                    loss = loss_fn(out, yb) if classification else loss_fn(out.squeeze(-1), yb)
                    loss.backward()
                    optimizer.step()
                    epoch_loss += loss.item()
                model.eval()
                with torch.no_grad():
                    out = model(x_val)
                    val = loss_fn(out, y_val) if classification else loss_fn(out.squeeze(-1), y_val)
                    val.item()


def fold_parallel(data: FoldData, configs: list[TrainConfig]) -> None:
    for config in configs:
        train_folds(data, config)


def fold_and_trial_parallel(data: FoldData, configs: list[TrainConfig]) -> None:
    stacks: dict[tuple, list[TrainConfig]] = {}
    for config in configs:
        stacks.setdefault(stack_key(config, data), []).append(config)
    for stack in stacks.values():
        train_stack(data, stack)


def _variant(configs: list[TrainConfig], **changes: str) -> list[TrainConfig]:
    return [dataclasses.replace(config, **changes) for config in configs]


def _timed(way: str, run: Callable[[], None], samples: int, device: torch.device) -> WayTiming:
    _synchronize(device)
    started = time.perf_counter()
    run()
    _synchronize(device)
    return WayTiming(way, time.perf_counter() - started, samples)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(
    case: BenchCase,
    device: torch.device,
    *,
    skip_naive: bool = False,
    compiled: bool = False,
    bf16: bool = False,
) -> list[WayTiming]:
    """Time the three ways on one case; returns their timings, naive first.

    ``compiled`` adds fold+trial-parallel with the step compiled (``capture="compile"``): once
    with the compiling counted, once more warm. ``bf16`` adds it in bf16 mixed precision.
    """
    dataset = load_dataset(
        "synthetic", n_samples=case.n_samples, n_features=case.n_features, seed=0
    )
    folds = make_folds(dataset, n_folds=case.n_folds, seed=0)
    configs = case.configs()
    samples = len(configs) * case.epochs * sum(len(fold.train_idx) for fold in folds)
    data = prepare_folds(dataset, folds, device=device)
    warm = TrainConfig(batch_size=8, epochs=1, optimizer=OptimizerConfig("adam", 1e-3))
    train_folds(data, warm)  # first-call allocations and kernel loads are not what we measure
    timings = []
    if not skip_naive:
        timings.append(
            _timed("naive", lambda: naive_loop(dataset, folds, configs, device), samples, device)
        )
    timings.append(_timed("fold-parallel", lambda: fold_parallel(data, configs), samples, device))
    timings.append(
        _timed(
            "fold+trial-parallel", lambda: fold_and_trial_parallel(data, configs), samples, device
        )
    )
    variants = []
    if compiled:
        captured = _variant(configs, capture="compile")
        variants += [("compiled, compiling", captured), ("compiled, warm", captured)]
    if bf16:
        variants.append(("bf16", _variant(configs, precision="bf16")))
    for way, variant in variants:
        timings.append(
            _timed(way, lambda v=variant: fold_and_trial_parallel(data, v), samples, device)
        )
    return timings


def batch_throughput(
    device: torch.device, *, batch_size: int = 32, n_configs: int = 16, **changes: str
) -> WayTiming:
    """Training samples/s summed over a stack of ``n_configs`` trials x 5 folds at one batch
    size, on 100k x 50 synthetic data: the engine's raw speed at a typical mini-batch size."""
    dataset = load_dataset("synthetic", n_samples=100_000, n_features=50, seed=0)
    folds = make_folds(dataset, n_folds=5, seed=0)
    data = prepare_folds(dataset, folds, device=device)
    configs = [
        TrainConfig(
            batch_size=batch_size,
            epochs=1,
            optimizer=OptimizerConfig("adam", lr),
            model=MLPConfig((50,)),
            **changes,
        )
        for lr in torch.logspace(-4, -1, n_configs).tolist()
    ]
    train_stack(data, configs)  # warm-up (and compiling, when asked)
    samples = n_configs * sum(len(fold.train_idx) for fold in folds)
    label = f"batch {batch_size}, {n_configs} trials x 5 folds" + "".join(
        f", {key}={value}" for key, value in changes.items()
    )
    return _timed(label, lambda: train_stack(data, configs), samples, device)


def format_case(case: BenchCase, timings: list[WayTiming]) -> str:
    batch_sizes = ", ".join("full" if b is None else str(b) for b in case.batch_sizes)
    lines = [
        f"{case.name}: {len(case.configs())} configs (batch {batch_sizes} x lr "
        f"{', '.join(map(str, case.learning_rates))} x {', '.join(case.optimizers)}), "
        f"{case.n_folds} folds x {case.epochs} epochs, MLP {case.hidden}"
    ]
    base = timings[0].seconds
    for timing in timings:
        lines.append(
            f"  {timing.way:<20} {timing.seconds:8.2f} s  {timing.samples_per_second:14,.0f} samples/s"
            f"  x{base / timing.seconds:6.1f} vs {timings[0].way}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="small case only, 5 epochs")
    parser.add_argument(
        "--skip-naive-large", action="store_true", help="time the naive loop on the small case only"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time the step compiled (capture=compile)"
    )
    parser.add_argument("--bf16", action="store_true", help="also time bf16 mixed precision")
    parser.add_argument(
        "--batch32", action="store_true", help="also time samples/s of a stack at batch 32"
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    small = BenchCase(**{**SMALL.__dict__, "epochs": 5}) if args.quick else SMALL
    extras = {"compiled": args.compile, "bf16": args.bf16}
    results = [(small, run_case(small, device, **extras))]
    print(format_case(*results[0]), flush=True)
    if not args.quick:
        large = run_case(LARGE, device, skip_naive=args.skip_naive_large, **extras)
        results.append((LARGE, large))
        print(format_case(*results[1]), flush=True)
    if args.batch32:
        variants: list[dict[str, str]] = [{}]
        variants += [{"capture": "compile"}] if args.compile else []
        variants += [{"precision": "bf16"}] if args.bf16 else []
        for changes in variants:
            timing = batch_throughput(device, **changes)
            print(
                f"throughput at {timing.way}: {timing.samples_per_second:,.0f} samples/s "
                f"({timing.seconds:.2f} s)",
                flush=True,
            )
    case, timings = results[0]
    best = min((t for t in timings[1:] if t.way != "compiled, compiling"), key=lambda t: t.seconds)
    print(f"best vs naive on {case.name}: {best.way} x{timings[0].seconds / best.seconds:.1f}")


if __name__ == "__main__":
    main()
