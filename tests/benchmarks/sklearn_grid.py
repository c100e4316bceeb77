"""The article's grid with scikit-learn alone, as a whole process: ``MLPRegressor`` in
``GridSearchCV`` over batch 16 / 64 / full x lr 1e-3 / 1e-2 x SGD / Adam, 5-fold CV, 20 epochs,
on the same synthetic 1000x10 regression. ``make bench`` times this process from the outside
next to a whole ``sweep run`` of the same grid (:mod:`tests.benchmarks.whole_process`).

    .venv/bin/python -m tests.benchmarks.sklearn_grid [--epochs 20]
"""

from __future__ import annotations

import argparse
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trainers.data import load_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    dataset = load_dataset("synthetic", n_samples=args.samples, n_features=10, noise=0.1, seed=0)
    full = args.samples - args.samples // 5  # one training fold
    model = make_pipeline(
        StandardScaler(),
        MLPRegressor(
            hidden_layer_sizes=(50,),
            max_iter=args.epochs,  # epochs, for sgd and adam
            n_iter_no_change=args.epochs + 1,  # no early stop: every epoch runs, as in the sweep
            tol=0.0,
            momentum=0.0,  # plain SGD, as the sweep's sgd
            shuffle=True,
            random_state=0,
        ),
    )
    grid = {
        "mlpregressor__batch_size": [16, 64, full],
        "mlpregressor__learning_rate_init": [1e-3, 1e-2],
        "mlpregressor__solver": ["sgd", "adam"],
    }
    search = GridSearchCV(
        model, grid, cv=KFold(5, shuffle=True, random_state=0), scoring="neg_mean_squared_error"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 20 epochs, as asked
        search.fit(dataset.X, dataset.y)
    print(f"best {search.best_params_}, CV MSE {-search.best_score_:.4g}")


if __name__ == "__main__":
    main()
