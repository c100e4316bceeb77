"""Benchmark of the training engine: the same grid of configs trained three ways, side by side.

1. ``naive``: what a user writes from the tutorials: a DataLoader per fold, folds one after another,
   one ``nn.Module`` and one ``torch.optim`` optimizer per model, ``loss.item()`` every batch.
2. ``fold-parallel``: each config's k folds stacked into one model (``train_folds``).
3. ``fold+trial-parallel``: every config sharing a batch size stacked too (``train_stack``).

torch, numpy and scikit-learn only, so it also runs on a GPU box without Optuna or MLflow:
``python -m trainers.benchmark --device cuda``. ``make bench`` adds the sweep's own overhead.
"""

from __future__ import annotations

import argparse
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


def _timed(way: str, run: Callable[[], None], samples: int, device: torch.device) -> WayTiming:
    _synchronize(device)
    started = time.perf_counter()
    run()
    _synchronize(device)
    return WayTiming(way, time.perf_counter() - started, samples)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(case: BenchCase, device: torch.device, *, skip_naive: bool = False) -> list[WayTiming]:
    """Time the three ways on one case; returns their timings, naive first."""
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
    return timings


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
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    small = BenchCase(**{**SMALL.__dict__, "epochs": 5}) if args.quick else SMALL
    results = [(small, run_case(small, device))]
    print(format_case(*results[0]), flush=True)
    if not args.quick:
        results.append((LARGE, run_case(LARGE, device, skip_naive=args.skip_naive_large)))
        print(format_case(*results[1]), flush=True)
    case, timings = results[0]
    best = min(timings[1:], key=lambda t: t.seconds)
    print(f"best vs naive on {case.name}: {best.way} x{timings[0].seconds / best.seconds:.1f}")


if __name__ == "__main__":
    main()
