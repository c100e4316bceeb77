"""Where a run came from and what may be shown of it: URLs without their passwords, the MLflow run
context (user, source, git commit), the parent run's description. Imports nothing heavy."""
