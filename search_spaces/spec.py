"""The validated, typed form of a search-space YAML file.

Everything downstream (the study, the objective, the trainers' configs) reads these frozen
dataclasses, never the raw YAML. :func:`search_spaces.load_space` is the only producer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from trainers import vocabulary

BatchChoice = Union[int, Literal["full"]]  # noqa: UP007 (kept as written; same type)

# The trainers' own names, from their torch-free vocabulary, so the two sides cannot drift.
OPTIMIZERS = vocabulary.OPTIMIZER_NAMES
SCHEDULES = vocabulary.SCHEDULES
ACTIVATIONS = vocabulary.ACTIVATIONS

SAMPLERS = ("tpe", "random", "grid", "gp", "cmaes")
PRUNERS = ("median", "hyperband", "none")
TASKS = ("auto", "regression", "classification")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")
CAPTURE_MODES = ("off", "compile")
NAMED_DATASETS = ("synthetic", "diabetes", "breast_cancer", "digits", "wine", "iris")
# Not in the trainers' vocabulary yet: trainers.data keeps the same two tuples.
CATEGORICAL_MODES = ("error", "onehot")
MISSING_MODES = ("error", "drop_rows")
# A study's name, wherever it comes from (YAML name, --study, study=): it names folders, so no
# path separator, no leading dot, and short.
STUDY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
STUDY_NAME_RULE = (
    "letters, digits, '_', '.' or '-' (starting with a letter or digit), at most 64 characters"
)


def is_study_name(name: object) -> bool:
    """True when ``name`` may name a study (see STUDY_NAME_PATTERN); a trailing newline too is
    refused, which ``re.match`` with ``$`` would let through."""
    return isinstance(name, str) and re.fullmatch(STUDY_NAME_PATTERN, name) is not None


@dataclass(frozen=True)
class FloatRange:
    """A continuous parameter sampled between ``low`` and ``high`` (inclusive)."""

    low: float
    high: float
    log: bool = True


@dataclass(frozen=True)
class FloatChoices:
    """A float parameter restricted to listed values (needed by the grid sampler)."""

    values: tuple[float, ...]


FloatParam = Union[FloatRange, FloatChoices]  # noqa: UP007 (kept as written; same type)


STANDARDIZE = ("auto", "features", "none")


@dataclass(frozen=True)
class DatasetSpec:
    source: str  # a name from NAMED_DATASETS, an absolute path to a CSV file, or "" (factory)
    target: str | None = None  # CSV column holding the target; required for CSV, unused otherwise
    task: str = "auto"  # one of TASKS; "auto" infers it from the target
    n_samples: int = 1000  # synthetic only
    n_features: int = 10  # synthetic only
    noise: float = 0.1  # synthetic only: std of Gaussian noise added to the target
    seed: int = 0  # synthetic only: seed of the generated data
    # CSV only, one of CATEGORICAL_MODES: onehot turns each text feature column into one 0/1
    # column per distinct value; error refuses the file.
    categorical: str = "error"
    # CSV only, one of MISSING_MODES: drop_rows drops the rows with an empty or NaN cell;
    # error refuses the file.
    missing: str = "error"
    # A user's data: "file.py:function" (absolute path) or "package.module:function", called
    # with ``kwargs``; it returns (X, y) of any per-sample shape or a torch Dataset.
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """The built-in MLP (hidden, activation, dropout), or a user's module factory."""

    hidden: tuple[int, ...] = (50,)  # widths of the hidden layers; () is a linear model
    activation: str = "relu"  # one of ACTIVATIONS
    dropout: float = 0.0  # in [0, 1)
    # "file.py:function" (absolute path) or "package.module:function", called as
    # fn(input_shape=..., n_outputs=..., **kwargs) -> torch.nn.Module
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreprocessSpec:
    # auto: features (and a regression target) standardised per fold for tables, nothing for
    # N-d inputs; features: the same for tables; none: the data as the user gave it.
    standardize: str = "auto"


@dataclass(frozen=True)
class CVSpec:
    folds: int = 5  # >= 2
    stratify: bool | None = None  # None: stratify when the task is classification
    seed: int = 0  # shuffles the split


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 20  # >= 1
    schedule: str = "none"  # one of SCHEDULES
    step_size: int = 10  # "step" only: epochs between LR drops
    gamma: float = 0.1  # "step" only: LR multiplier at each drop, in (0, 1]
    device: str = "auto"  # one of DEVICES
    precision: str = "fp32"  # one of PRECISIONS: bf16 runs the matmuls in bfloat16
    capture: str = "off"  # one of CAPTURE_MODES: compile runs each step through torch.compile
    threads: int | None = None  # torch's intra-op CPU threads; None (auto): by each stack's size


LR_SCALING_RULES = ("auto", "linear", "sqrt", "none")
OBJECTIVES = ("cv_loss", "epoch_seconds")


@dataclass(frozen=True)
class LrScaling:
    """Couple the learning rate to the batch size: the sampled ``lr`` is the rate at
    ``reference_batch_size``; a trial with batch b trains at lr * (b / reference) ** power."""

    rule: str = "auto"  # linear (Goyal et al. 2017), sqrt (Malladi et al. 2022), none, or auto:
    #                     linear for sgd and momentum, sqrt for adam, adamw and rmsprop
    reference_batch_size: int = 32


@dataclass(frozen=True)
class SearchSpec:
    batch_size: tuple[BatchChoice, ...]  # ints >= 1 and/or "full"
    lr: FloatParam
    optimizer: tuple[str, ...]  # names from OPTIMIZERS
    weight_decay: FloatParam | None = None  # None: not searched, 0.0 (adamw: 0.01)
    momentum: FloatParam | None = None  # None: not searched, 0.9; used by momentum and rmsprop
    lr_scaling: LrScaling | None = None  # None: lr is used as sampled, whatever the batch size


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"  # one of SAMPLERS
    seed: int | None = 0


@dataclass(frozen=True)
class BudgetSpec:
    trials: int = 20  # >= 1: COMPLETE + PRUNED trials the study should hold
    timeout_seconds: float | None = None  # stop starting new trials after this long
    group_size: int = (
        8  # trials asked of the sampler at once; those sharing a batch size train stacked
    )


@dataclass(frozen=True)
class SweepSpec:
    """One experiment: what data, which model, how to score, what to search, how long."""

    name: str  # default study name
    path: str  # the YAML file it came from (absolute), for messages
    dataset: DatasetSpec
    model: ModelSpec
    cv: CVSpec
    training: TrainingSpec
    search: SearchSpec
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: str = "median"  # one of PRUNERS
    # ("cv_loss",) or ("cv_loss", "epoch_seconds"): the second makes a multi-objective study whose
    # Pareto front trades CV score against time per epoch.
    objectives: tuple[str, ...] = ("cv_loss",)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    # a name from LOSS_NAMES / METRIC_NAMES, "file.py:function", or auto: mse and r2 for
    # regression, cross_entropy and accuracy for classification
    loss: str = "auto"
    metric: str = "auto"
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
