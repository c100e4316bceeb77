"""Search spaces: which data, model, CV scheme and hyperparameter ranges a sweep explores.

A search space is a YAML file. Three are bundled with the package and can be named
directly: ``default`` (diabetes regression, a quick general-purpose sweep),
``seed_article`` (the batch-size article's grid over batch size x optimizer x learning rate)
and ``quick`` (a tiny iris sweep for end-to-end tests). Any other YAML file is given by path;
read ``default.yaml`` to learn the format.

:func:`load_space` reads a file, applies command-line overrides, validates every setting and
returns a frozen :class:`SweepSpec`. Anything wrong is a :class:`SpaceError` whose message
names the file (or flag), the dotted key, the rule, the value received and the fix.

Example:
    >>> from search_spaces import load_space
    >>> spec = load_space("seed_article")
    >>> spec.sampler.name, spec.search.batch_size
    ('grid', (1, 64, 'full'))
"""

from __future__ import annotations

from search_spaces._loader import (
    SpaceError,
    bundled_space_names,
    load_space,
    load_space_mapping,
    read_space,
    resolve_space_path,
)
from search_spaces.spec import (
    ACTIVATIONS,
    CAPTURE_MODES,
    DEVICES,
    NAMED_DATASETS,
    OPTIMIZERS,
    PRECISIONS,
    PRUNERS,
    SAMPLERS,
    SCHEDULES,
    TASKS,
    BatchChoice,
    BudgetSpec,
    CVSpec,
    DatasetSpec,
    FloatChoices,
    FloatParam,
    FloatRange,
    ModelSpec,
    SamplerSpec,
    SearchSpec,
    SweepSpec,
    TrainingSpec,
)

__all__ = [
    "ACTIVATIONS",
    "CAPTURE_MODES",
    "DEVICES",
    "PRECISIONS",
    "NAMED_DATASETS",
    "OPTIMIZERS",
    "PRUNERS",
    "SAMPLERS",
    "SCHEDULES",
    "TASKS",
    "BatchChoice",
    "BudgetSpec",
    "CVSpec",
    "DatasetSpec",
    "FloatChoices",
    "FloatParam",
    "FloatRange",
    "ModelSpec",
    "SamplerSpec",
    "SearchSpec",
    "SpaceError",
    "SweepSpec",
    "TrainingSpec",
    "bundled_space_names",
    "load_space",
    "load_space_mapping",
    "read_space",
    "resolve_space_path",
]
