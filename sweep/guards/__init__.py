"""Guards at the door: checks that refuse hostile or impossible input before anything is created,
and file writes that cannot be turned against the user.

- :mod:`sweep.guards.study_names`: one rule for a study's name, wherever it comes from.
- :mod:`sweep.guards.store_checks`: the Optuna storage and the MLflow tracking store, parsed,
  their driver present, reachable within seconds and not locked.
- :mod:`sweep.guards.gpus`: ``--gpus`` parsed and checked against the CUDA devices.
- :mod:`sweep.guards.safe_files`: report and export files written without following a symlink.

Each module is light to import (no torch, Optuna or MLflow at import time), so the CLI can run
the checks before it loads the heavy libraries.
"""
