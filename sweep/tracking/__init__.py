"""Experiment tracking behind one protocol (:class:`TrackingSink`): MLflow in a sweep, memory in
tests. Importing this package does not import MLflow; ``sweep.tracking.mlflow_sink`` does."""

from sweep.tracking.memory_sink import MemorySink
from sweep.tracking.sink import RUN_STATUS, FinishedTrials, TrackingSink

__all__ = ["RUN_STATUS", "FinishedTrials", "MemorySink", "TrackingSink"]
