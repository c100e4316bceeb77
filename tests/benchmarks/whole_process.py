"""``make bench``: whole processes, timed from the outside, side by side in one run.

On the article's grid (synthetic 1000x10 regression, MLP 10->50->1, batch 16 / 64 / full x lr
1e-3 / 1e-2 x SGD / Adam, 5-fold CV, 20 epochs):

1. ``sweep run`` into new stores, then a second study into the same (existing) stores, with
   ``-v`` for its split of the time; then the same with the tracking process forced on
   (``SWEEP_TRACKING_PROCESS=1``) and off (``0``), since by default it forks only when two cores
   are free at that moment;
2. scikit-learn's ``MLPRegressor`` + ``GridSearchCV`` on the same grid
   (:mod:`tests.benchmarks.sklearn_grid`), and the ratio (target: existing stores <= 1.0x);
3. ``sweep run --workers 2`` against ``--workers 1``, both into existing stores;
4. the default space (``make sweep``) into existing stores (target <= 5 s).

Everything is written under a temporary folder. ``--quick`` trains 2 epochs and skips the
default space.

    .venv/bin/python -m tests.benchmarks.whole_process [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GRID = """
name: article_grid
dataset: {{source: synthetic, n_samples: 1000, n_features: 10, noise: 0.1, seed: 0}}
model: {{hidden: [50]}}
cv: {{folds: 5, seed: 0}}
training: {{epochs: {epochs}, device: cpu}}
search:
  batch_size: [16, 64, full]
  lr: [0.001, 0.01]
  optimizer: [sgd, adam]
sampler: {{name: grid, seed: 0}}
pruner: none
budget: {{trials: 12, group_size: 12}}
"""


def timed(command: list[str], cwd: Path, **env: str) -> tuple[float, str]:
    """Wall seconds of a whole process, and its last line of output; fails loudly."""
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    lines = result.stdout.strip().splitlines()
    return seconds, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs; no default space")
    args = parser.parse_args(argv)
    epochs = 2 if args.quick else 20
    sweep = [sys.executable, "-m", "sweep", "run"]
    with tempfile.TemporaryDirectory(prefix="bench-whole-") as folder:
        work = Path(folder)
        (work / "grid.yaml").write_text(GRID.format(epochs=epochs))
        grid = [*sweep, "--space", "grid.yaml"]
        new, _ = timed([*grid, "--study", "new-stores"], work)
        existing, split = timed([*grid, "--study", "existing-stores", "-v"], work)
        forked, _ = timed([*grid, "--study", "forked"], work, SWEEP_TRACKING_PROCESS="1")
        single, _ = timed([*grid, "--study", "single"], work, SWEEP_TRACKING_PROCESS="0")
        sklearn, _ = timed(
            [sys.executable, "-m", "tests.benchmarks.sklearn_grid", "--epochs", str(epochs)], ROOT
        )
        print(
            f"article grid as whole processes (12 configs, 5 folds x {epochs} epochs):\n"
            f"  sweep run, new stores       {new:6.2f} s  x{new / sklearn:.2f} scikit-learn\n"
            f"  sweep run, existing stores  {existing:6.2f} s  x{existing / sklearn:.2f} "
            f"scikit-learn (target <= 1.0x)\n"
            f"  the same, tracking process  {forked:6.2f} s  x{forked / sklearn:.2f} "
            f"(SWEEP_TRACKING_PROCESS=1)\n"
            f"  the same, one process       {single:6.2f} s  x{single / sklearn:.2f} "
            f"(SWEEP_TRACKING_PROCESS=0)\n"
            f"  scikit-learn GridSearchCV   {sklearn:6.2f} s\n"
            f"  the existing-stores run's own {split}",
            flush=True,
        )
        one, _ = timed([*grid, "--study", "workers-1", "--workers", "1"], work)
        two, _ = timed([*grid, "--study", "workers-2", "--workers", "2"], work)
        print(
            f"  --workers 1 {one:6.2f} s, --workers 2 {two:6.2f} s: x{one / two:.2f} speed-up",
            flush=True,
        )
        if not args.quick:
            default, _ = timed([*sweep, "--space", "default", "--study", "default-2"], work)
            print(f"  default space (make sweep), existing stores {default:6.2f} s (target <= 5 s)")


if __name__ == "__main__":
    main()
