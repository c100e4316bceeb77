"""The run context MLflow's fluent API (``mlflow.start_run``) would record, for the runs the sweep
creates through ``MlflowClient``, which records none: who ran it, from what, at which commit.

The UI shows these as the run's "Created by" and "Source". Nothing here reads the command line's
arguments: they may hold a URL with its password.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

USER_TAG = "mlflow.user"
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_BRANCH_TAG = "mlflow.source.git.branch"


def run_context_tags(*, cwd: Path | None = None) -> dict[str, str]:
    """``mlflow.user``, ``mlflow.source.name`` and ``.type``, and, inside a git checkout (of
    ``cwd``, default the working directory), ``mlflow.source.git.commit`` and ``.branch``.

    Example:
        >>> sorted(run_context_tags())[:3]
        ['mlflow.source.git.branch', 'mlflow.source.git.commit', 'mlflow.source.name']
    """
    tags = {
        USER_TAG: _user(),
        SOURCE_NAME_TAG: _source_name(),
        SOURCE_TYPE_TAG: "LOCAL",  # MLflow's SourceType for a script or a notebook run here
    }
    folder = Path(cwd) if cwd is not None else Path.cwd()
    commit = _git(folder, "rev-parse", "HEAD")
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
        if branch and branch != "HEAD":  # a detached HEAD has no branch
            tags[GIT_BRANCH_TAG] = branch
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        return os.environ.get("USER", "unknown")


def _source_name() -> str:
    """The program, as MLflow names it: the script's path, or ``sweep`` for the console script
    and ``python -m sweep`` (whose workers run ``sweep/__main__.py``)."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not program or program == "-c":
        return "<interactive>"
    path = Path(program)
    if path.name == "sweep" or (path.name == "__main__.py" and path.parent.name == "sweep"):
        return "sweep"
    return str(path.resolve()) if path.exists() else program


def _git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git here
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
