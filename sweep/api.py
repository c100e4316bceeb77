"""``run_sweep()`` for notebooks and scripts: the sweep ``sweep run`` makes, with the same checks,
where the model and the data may be Python functions.

Example:
    >>> from sweep import run_sweep
    >>> result = run_sweep("digits_cnn", model=make_cnn, data=load_images, trials=8)
    >>> result.best.batch_size, result.report.choice
    >>> net = result.best.build_model()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import SpaceError, load_space_mapping, read_space
from sweep.best_config_data import BestConfig
from sweep.cli import OVERRIDE_FLAGS
from sweep.errors import UsageError
from sweep.guards.study_names import check_study_name
from sweep.outcome import SweepOutcome
from trainers.user_code import UserCodeError, reference_of


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did: the Optuna study, the recommended config (None before any
    trial completed), the batch-size report and the run's outcome (stores, counts, timing)."""

    study: Any  # optuna.Study
    best: BestConfig | None
    report: Any  # sweep.report.build.StudyReport
    outcome: SweepOutcome


def run_sweep(
    space: str | Path | Mapping[str, Any] = "default",
    *,
    model: Callable[..., Any] | None = None,
    data: Callable[..., Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    data_kwargs: Mapping[str, Any] | None = None,
    study: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    workers: int = 1,
    **settings: Any,
) -> SweepResult:
    """Create or resume a study and run it to its budget, as ``sweep run`` does.

    Args:
        space: a bundled space's name, a YAML path, or the same settings as a dict.
        model: ``fn(input_shape=..., n_outputs=..., **model_kwargs) -> torch.nn.Module``; it
            replaces the space's model.
        data: ``fn(**data_kwargs) -> (X, y)`` or a torch Dataset; it replaces the space's data
            set (the space's ``dataset.task`` stays).
        study, storage, tracking_uri, workers: as ``--study``, ``--storage``, ``--tracking-uri``
            and ``--workers``.
        **settings: the command line's overrides: trials, epochs, folds, dataset, target,
            device, precision, capture, threads, seed, group_size.

    A function defined in a notebook or in ``__main__`` is known to this process only: workers
    on other hosts, ``--workers`` and ``build_model()`` in another process need it in a ``.py``
    file. Bad input raises :class:`~sweep.errors.UsageError` with the message ``sweep run``
    prints, before anything is created.
    """
    check_study_name(study, flag="run_sweep(study=...):")
    unknown = sorted(set(settings) - set(OVERRIDE_FLAGS))
    if unknown:
        raise UsageError(
            f"run_sweep(): unknown setting(s) {', '.join(unknown)}; the settings are "
            f"{', '.join(OVERRIDE_FLAGS)} (the rest goes in the space)."
        )
    if isinstance(space, Mapping):
        path, raw, source = Path.cwd() / "run_sweep.yaml", dict(space), "run_sweep(space={...})"
    else:
        try:
            path, raw = read_space(str(space))
        except SpaceError as err:
            raise UsageError(str(err)) from err
        source = str(path)
    try:
        if model is not None:
            raw["model"] = {"factory": reference_of(model), "kwargs": dict(model_kwargs or {})}
        if data is not None:
            task = (raw.get("dataset") or {}).get("task", "auto")
            raw["dataset"] = {
                "factory": reference_of(data),
                "kwargs": dict(data_kwargs or {}),
                "task": task,
            }
    except UserCodeError as err:
        raise UsageError(f"run_sweep(): {err}") from err
    overrides = {OVERRIDE_FLAGS[k]: (f"{k}=", value) for k, value in settings.items()}
    if "seed" in settings:
        overrides["sampler.seed"] = ("seed=", settings["seed"])
    try:
        spec = load_space_mapping(raw, path=path, source=source, overrides=overrides)
    except SpaceError as err:
        raise UsageError(str(err)) from err
    in_process_only = [
        ref
        for ref in (spec.model.factory, spec.dataset.factory)
        if ref and ref.startswith("python:")
    ]
    if workers > 1 and in_process_only:
        raise UsageError(
            f"run_sweep(workers={workers}): {', '.join(in_process_only)} exist only in this "
            "process; worker processes need them in a .py file. Use workers=1, or name the file."
        )
    # Optuna and MLflow load with the sweep, not with `import sweep`.
    from sweep.commands.run import RunOptions
    from sweep.commands.run import run_sweep as run_command

    outcome = run_command(
        RunOptions(
            space=source,
            study=study,
            storage=storage,
            tracking_uri=tracking_uri,
            workers=workers,
            spec=spec,
        )
    )
    import optuna  # loaded by the sweep above already; kept off `import sweep`

    from sweep.study.resume import make_storage

    loaded = optuna.load_study(
        study_name=outcome.study_name, storage=make_storage(outcome.storage_url)
    )
    report = outcome.report
    return SweepResult(loaded, report.best if report else None, report, outcome)
