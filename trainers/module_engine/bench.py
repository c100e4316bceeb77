"""Benchmark the module engine on two grids. Medians of ``--repeats`` runs, each after one
untimed warm-up.

1. Digits CNN: the example CNN (``search_spaces/digits_cnn_model.py``) on scikit-learn's digits
   as 1x8x8 images, 8 trials (batch 32/128 x lr 1e-3/1e-2 x adam/sgd), 3 folds, 3 epochs: a
   naive loop as a user writes it (one model and one ``torch.optim`` optimizer at a time) against
   the stacked engine (``train_module_stack``, one stack per batch size), through its vmap path
   and through its stacked program (what it runs for this ``nn.Sequential``).
2. MLP: the same MLP grid through the MLP engine, the module engine stacked (program and vmap),
   and the module engine's sequential fallback.

``python -m trainers.module_engine.bench [--device cuda] [--repeats 3] [--quick] [--grid cnn]
[--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from trainers.data import Dataset, load_dataset
from trainers.device import resolve_device
from trainers.engine import train_stack
from trainers.factory_data import load_factory_dataset
from trainers.fold_data import prepare_folds
from trainers.folds import Fold, make_folds
from trainers.module_engine import (
    ModuleFoldData,
    module_folds_from,
    prepare_module_folds,
    train_module_stack,
)
from trainers.stacked_mlp import MLPConfig, build_mlp
from trainers.stacked_optim import OptimizerConfig
from trainers.train_config import TrainConfig
from trainers.user_code import load_callable

N_SAMPLES, N_FEATURES, N_FOLDS = 1000, 10, 5  # synthetic regression
BATCH_SIZE, EPOCHS, HIDDEN = 32, 5, (50,)
TRIALS = [("sgd", 1e-3), ("sgd", 1e-2), ("adam", 1e-3), ("adam", 1e-2)]

# The digits-CNN grid: the example user code shipped beside the bundled search spaces.
EXAMPLES = Path(__file__).resolve().parents[2] / "search_spaces"
CNN_MODEL = f"{EXAMPLES / 'digits_cnn_model.py'}:make_cnn"
CNN_DATA = f"{EXAMPLES / 'digits_cnn_data.py'}:load_digits_images"
CNN_FOLDS, CNN_EPOCHS, CNN_CHANNELS = 3, 3, 8
CNN_TRIALS = [
    (batch_size, name, lr)
    for batch_size in (32, 128)
    for lr in (1e-3, 1e-2)
    for name in ("adam", "sgd")
]


def mlp_factory(input_shape: tuple[int, ...], n_outputs: int) -> torch.nn.Module:
    return build_mlp(input_shape[0], n_outputs, MLPConfig(HIDDEN))


def median_seconds(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    run()  # warm-up: first-call allocations, kernel and library loads
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def naive_cnn_grid(
    dataset: Dataset,
    folds: list[Fold],
    factory: Callable[..., torch.nn.Module],
    trials: list[tuple[int, str, float]],
    device: torch.device,
) -> list[float]:
    """Trials as a user writes them: per trial, per fold, a fresh model and ``torch.optim``
    optimizer, manual batching, and a validation pass each epoch. Returns each trial's mean
    final validation accuracy."""
    inputs = torch.from_numpy(dataset.X).to(device)
    targets = torch.from_numpy(dataset.y).to(device)
    accuracies = []
    for batch_size, name, lr in trials:
        fold_accuracies = []
        for k, fold in enumerate(folds):
            torch.manual_seed(k)
            model = factory(
                input_shape=tuple(inputs.shape[1:]), n_outputs=10, channels=CNN_CHANNELS
            ).to(device)
            config = OptimizerConfig(name, lr)
            optimizer = config.torch_class()(model.parameters(), **config.torch_kwargs())
            train_idx = torch.from_numpy(fold.train_idx).to(device)
            val_idx = torch.from_numpy(fold.val_idx).to(device)
            history = []
            for _ in range(CNN_EPOCHS):
                model.train()
                order = train_idx[torch.randperm(len(train_idx), device=device)]
                for start in range(0, len(order), batch_size):
                    batch = order[start : start + batch_size]
                    loss = functional.cross_entropy(model(inputs[batch]), targets[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    logits = model(inputs[val_idx])
                    val_loss = functional.cross_entropy(logits, targets[val_idx]).item()
                    accuracy = (logits.argmax(dim=1) == targets[val_idx]).float().mean().item()
                history.append((val_loss, accuracy))
            fold_accuracies.append(history[-1][1])
        accuracies.append(float(np.mean(fold_accuracies)))
    return accuracies


def stacked_cnn_grid(
    data: ModuleFoldData,
    factory: Callable[..., torch.nn.Module],
    trials: list[tuple[int, str, float]],
    *,
    use_program: bool = True,
) -> list[float]:
    """Trials through the stacked engine, one stack per batch size. Returns each trial's mean
    final validation accuracy, in the order given."""
    accuracies = {}
    for batch_size in dict.fromkeys(b for b, _, _ in trials):
        group = [t for t in trials if t[0] == batch_size]
        configs = [
            TrainConfig(batch_size, CNN_EPOCHS, OptimizerConfig(n, lr)) for _, n, lr in group
        ]
        outcomes = train_module_stack(
            data,
            factory,
            configs,
            model_kwargs={"channels": CNN_CHANNELS},
            loss="cross_entropy",
            engine="stacked",
            use_program=use_program,
        )
        for trial, outcome in zip(group, outcomes):
            accuracies[trial] = float(outcome.result.fold_val_metric.mean())
    return [accuracies[trial] for trial in trials]


def bench_cnn(device: torch.device, repeats: int) -> None:
    dataset = load_factory_dataset(CNN_DATA, {})
    factory = load_callable(CNN_MODEL)
    folds = make_folds(dataset, n_folds=CNN_FOLDS, seed=0)
    data = prepare_module_folds(
        dataset.X, dataset.y, [(f.train_idx, f.val_idx) for f in folds], device=device
    )
    batch_sizes = list(dict.fromkeys(b for b, _, _ in CNN_TRIALS))
    print(
        f"digits CNN: {dataset.n_samples} images {dataset.X.shape[1:]}, {CNN_FOLDS} folds x "
        f"{len(CNN_TRIALS)} trials (batch {'/'.join(map(str, batch_sizes))} x lr 1e-3/1e-2 x "
        f"adam/sgd), {CNN_EPOCHS} epochs, channels={CNN_CHANNELS}; medians of {repeats}; the "
        "grid is the sum of its batch sizes' medians"
    )
    ways: list[tuple[str, Callable[[list], list[float]]]] = [
        (
            "naive loop (one model at a time)",
            lambda t: naive_cnn_grid(dataset, folds, factory, t, device),
        ),
        (
            "stacked engine, vmap path",
            lambda t: stacked_cnn_grid(data, factory, t, use_program=False),
        ),
        ("stacked engine (train_module_stack)", lambda t: stacked_cnn_grid(data, factory, t)),
    ]
    header = "".join(f"{f'batch {b}':>12}" for b in batch_sizes)
    print(f"  {'':<38}{header}{'grid':>10}{'samples/s':>12}  mean val accuracy")
    walls: list[list[float]] = []
    for way, run in ways:
        seconds, accuracy = [], {}
        for batch_size in batch_sizes:
            trials = [t for t in CNN_TRIALS if t[0] == batch_size]

            def timed(run=run, trials=trials, accuracy=accuracy) -> None:
                accuracy.update(zip(trials, run(trials)))  # the same each repeat: seeded

            seconds.append(median_seconds(timed, device, repeats))
        walls.append(seconds)
        samples = len(CNN_TRIALS) * CNN_EPOCHS * sum(data.train_sizes)
        cells = "".join(f"{s:>10.3f} s" for s in seconds)
        print(
            f"  {way:<38}{cells}{sum(seconds):>8.3f} s{samples / sum(seconds):>12,.0f}  "
            f"{np.mean(list(accuracy.values())):.3f}"
        )
    for label, stacked in (("vmap path", walls[1]), ("stacked engine", walls[2])):
        ratios = [naive / seconds for naive, seconds in zip(walls[0], stacked)]
        cells = "".join(f"{f'x{r:.2f}':>12}" for r in ratios)
        grid = f"x{sum(walls[0]) / sum(stacked):.2f}"
        print(f"  {f'speed-up, {label} over naive':<38}{cells}{grid:>10}")


def bench_mlp(device: torch.device, repeats: int) -> None:
    dataset = load_dataset("synthetic", n_samples=N_SAMPLES, n_features=N_FEATURES, seed=0)
    data = prepare_folds(dataset, make_folds(dataset, n_folds=N_FOLDS, seed=0), device=device)
    module_data = module_folds_from(data)
    mlp_configs = [
        TrainConfig(BATCH_SIZE, EPOCHS, OptimizerConfig(name, lr), model=MLPConfig(HIDDEN))
        for name, lr in TRIALS
    ]
    configs = [TrainConfig(BATCH_SIZE, EPOCHS, OptimizerConfig(name, lr)) for name, lr in TRIALS]
    ways: list[tuple[str, Callable[[], object]]] = [
        ("MLP engine (train_stack)", lambda: train_stack(data, mlp_configs)),
        (
            "module engine, stacked program",
            lambda: train_module_stack(module_data, mlp_factory, configs, engine="stacked"),
        ),
        (
            "module engine, stacked, vmap path",
            lambda: train_module_stack(
                module_data, mlp_factory, configs, engine="stacked", use_program=False
            ),
        ),
        (
            "module engine, sequential (torch.optim)",
            lambda: train_module_stack(module_data, mlp_factory, configs, engine="sequential"),
        ),
    ]
    samples = len(TRIALS) * EPOCHS * sum(data.train_sizes)
    print(
        f"MLP: synthetic {N_SAMPLES}x{N_FEATURES}, {N_FOLDS} folds x {len(TRIALS)} trials, batch "
        f"{BATCH_SIZE}, {EPOCHS} epochs, MLP {HIDDEN}; median of {repeats}"
    )
    base = None
    for way, run in ways:
        seconds = median_seconds(run, device, repeats)
        base = base or seconds
        print(
            f"  {way:<42} {seconds:7.3f} s  {samples / seconds:12,.0f} samples/s  "
            f"x{seconds / base:5.2f} the MLP engine's time"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one timed run per way")
    parser.add_argument("--grid", choices=("all", "cnn", "mlp"), default="all")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    repeats = 1 if args.quick else args.repeats
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.grid in ("all", "cnn"):
        bench_cnn(device, repeats)
    if args.grid in ("all", "mlp"):
        bench_mlp(device, repeats)


if __name__ == "__main__":
    main()
