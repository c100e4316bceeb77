"""The service: CLI, study, objective, MLflow tracking, report, and the best-config export.

Other projects need one call::

    from sweep import load_best_config
    best = load_best_config("best.json")      # a file, "runs:/<run_id>", or a study name
    optimizer = best.make_optimizer(best.build_model().parameters())

Notebooks run a sweep with ``run_sweep(space, model=fn, data=fn, trials=...)``.
"""

from sweep.api import SweepResult, run_sweep
from sweep.best_config import BestConfig, Provenance, load_best_config

__all__ = ["BestConfig", "Provenance", "SweepResult", "load_best_config", "run_sweep"]
