"""Read a search-space YAML file, apply command-line overrides, and validate it into a SweepSpec.

Every problem is reported as a :class:`SpaceError` before anything (data, model, study) is
created. The message names where the setting came from (the file, or the command-line flag
that overrode it), the dotted key, the rule, the value received, and how to fix it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

import yaml

from search_spaces._yaml_reader import YamlRefused, read_bounded_yaml
from search_spaces.spec import (
    ACTIVATIONS,
    CAPTURE_MODES,
    CATEGORICAL_MODES,
    DEVICES,
    LR_SCALING_RULES,
    MISSING_MODES,
    NAMED_DATASETS,
    OBJECTIVES,
    OPTIMIZERS,
    PRECISIONS,
    PRUNERS,
    SAMPLERS,
    SCHEDULES,
    STANDARDIZE,
    STUDY_NAME_PATTERN,
    STUDY_NAME_RULE,
    TASKS,
    BudgetSpec,
    CVSpec,
    DatasetSpec,
    FloatChoices,
    FloatParam,
    FloatRange,
    LrScaling,
    ModelSpec,
    PreprocessSpec,
    SamplerSpec,
    SearchSpec,
    SweepSpec,
    TrainingSpec,
    is_study_name,
)
from trainers.vocabulary import LOSS_NAMES, METRIC_NAMES, MOMENTUM_OPTIMIZERS

PACKAGE_DIR = Path(__file__).resolve().parent

_SYNTHETIC_ONLY = ("n_samples", "n_features", "noise", "seed")
_STEP_ONLY = ("step_size", "gamma")
_CSV_ONLY: dict[str, tuple[str, ...]] = {"categorical": CATEGORICAL_MODES, "missing": MISSING_MODES}

# Keys whose command-line values stay strings; other string values are read as YAML scalars.
_STRING_KEYS = frozenset(
    {
        "name",
        "dataset.source",
        "dataset.target",
        "dataset.task",
        "dataset.categorical",
        "dataset.missing",
        "model.activation",
        "training.schedule",
        "training.device",
        "training.precision",
        "training.capture",
        "sampler",
        "sampler.name",
        "pruner",
        "dataset.factory",
        "model.factory",
        "loss",
        "metric",
        "preprocess.standardize",
    }
)


def _keys(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "": tuple(k for k in _keys(SweepSpec) if k != "path"),
    "dataset": _keys(DatasetSpec),
    "model": _keys(ModelSpec),
    "cv": _keys(CVSpec),
    "training": _keys(TrainingSpec),
    "search": _keys(SearchSpec),
    "sampler": _keys(SamplerSpec),
    "budget": _keys(BudgetSpec),
    "preprocess": _keys(PreprocessSpec),
}
_RANGE_KEYS = ("low", "high", "log")
_MAX_SEED = 2**32 - 1


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


_NO_VALUE: Any = _NoValue()


SHOWN_CHARACTERS = 200  # of a value echoed in a message: a 1 MB value is not printed whole


def _show(value: object) -> str:
    """Render a value the way it would be written in YAML (true, null, 'text', [1, 2]), cut
    after about SHOWN_CHARACTERS characters."""
    pieces: list[str] = []
    length = 0
    for piece in _pieces(value, depth=0):
        pieces.append(piece)
        length += len(piece)
        if length > SHOWN_CHARACTERS:
            return _clip("".join(pieces))
    return "".join(pieces)


def _pieces(value: object, depth: int) -> Iterator[str]:
    """``value`` as YAML, piece by piece, so that a huge one is never rendered whole."""
    if value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield repr(value[: SHOWN_CHARACTERS + 1])
    elif depth > 8 and isinstance(value, (list, tuple, Mapping)):
        yield "..."
    elif isinstance(value, (list, tuple)):
        yield "["
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _pieces(item, depth + 1)
        yield "]"
    elif isinstance(value, Mapping):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield f"{', ' if i else ''}{_clip(str(key))}: "
            yield from _pieces(item, depth + 1)
        yield "}"
    else:
        yield _clip(repr(value))


def _clip(text: str) -> str:
    """``text``, or its first SHOWN_CHARACTERS characters and a note that it was cut."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}... (cut at {SHOWN_CHARACTERS} characters)"


class SpaceError(ValueError):
    """An invalid search space: a bad YAML file, setting or command-line override.

    Attributes:
        source: the file (as shown to the user) or the command-line flag the value came from.
        key: the dotted key, e.g. ``"search.lr.low"``; None for whole-file problems.
        rule: what the value must satisfy, e.g. ``"must be an integer >= 2"``.
        value: the value received (None when there is none to show).
        fix: a sentence saying how to fix it.
        from_flag: True when ``source`` is a command-line flag.

    Example:
        >>> str(SpaceError("default.yaml", "cv.folds", "must be an integer >= 2", 1,
        ...                "Set cv.folds to 2 or more."))
        "default.yaml: key 'cv.folds' must be an integer >= 2, got 1. Set cv.folds to 2 or more."
    """

    def __init__(
        self,
        source: str,
        key: str | None,
        rule: str,
        value: object = _NO_VALUE,
        fix: str = "",
        from_flag: bool = False,
    ) -> None:
        self.source = source
        self.key = key
        self.rule = rule
        self.value = None if value is _NO_VALUE else value
        self.fix = fix
        self.from_flag = from_flag
        self._args = (source, key, rule, value, fix, from_flag)
        if key is None:
            message = f"{source}: {rule}"
        elif from_flag:
            message = f"{source} ({key}) {rule}"
        else:
            message = f"{source}: key '{key}' {rule}"
        if value is not _NO_VALUE:
            message += f", got {_show(value)}"
        message += "."
        if fix:
            message += f" {fix}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._args)


def bundled_space_names() -> list[str]:
    """Names of the YAML search spaces shipped inside the ``search_spaces`` package.

    Example:
        >>> "default" in bundled_space_names()
        True
    """
    return sorted(p.stem for p in PACKAGE_DIR.glob("*.yaml"))


def _did_you_mean(word: object, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"Did you mean '{close[0]}'? " if close else ""


def resolve_space_path(name_or_path: str) -> Path:
    """Find the YAML file for a bundled space name or a path.

    A bare name (no directory part), with or without ``.yaml``, that matches a bundled space
    resolves to that file in the package directory; anything else is a path relative to the
    current working directory.

    Args:
        name_or_path: e.g. ``"default"``, ``"seed_article.yaml"`` or ``"spaces/mine.yaml"``.

    Returns:
        The absolute path of the YAML file.

    Raises:
        SpaceError: no bundled space of that name and no such file.

    Example:
        >>> resolve_space_path("default").name
        'default.yaml'
    """
    text = os.fspath(name_or_path)
    bundled = bundled_space_names()
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    stem = text.removesuffix(".yaml")
    if not any(s in text for s in separators) and stem in bundled:
        return PACKAGE_DIR / f"{stem}.yaml"
    path = Path(text).expanduser()
    if _is_file(path):
        return path.resolve()
    problem = "is a directory, not a YAML file" if _is_dir(path) else "no such file"
    raise SpaceError(
        _clip(text),
        None,
        f"{problem}, and not the name of a bundled search space",
        fix=f"{_did_you_mean(stem, bundled)}Bundled spaces: {', '.join(bundled)}. "
        f"Otherwise pass a path to a YAML file (relative paths start at {Path.cwd()}).",
    )


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the system refuses (too long, say)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, source: str) -> dict[str, Any]:
    try:
        raw = read_bounded_yaml(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(source, None, f"cannot be read ({exc})", fix="Check the path.") from exc
    except YamlRefused as exc:
        raise SpaceError(source, exc.key, exc.rule, fix=exc.fix) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark:
            problem += f" ({context} started at line {context_mark.line + 1})"
        raise SpaceError(
            source,
            None,
            f"is not valid YAML{where}: {_clip(problem)}",
            fix="Fix the syntax there (check indentation, colons and brackets).",
        ) from exc
    if raw is None:
        raise SpaceError(
            source,
            None,
            "is empty",
            fix="A search space needs at least the 'dataset' and 'search' sections; "
            "copy search_spaces/default.yaml to start.",
        )
    if not isinstance(raw, dict):
        raise SpaceError(
            source,
            None,
            "must hold a mapping of settings (key: value lines) at the top level",
            raw,
            fix="Start from search_spaces/default.yaml.",
        )
    return raw


def _apply_overrides(
    raw: dict[str, Any], overrides: Mapping[str, tuple[str, object]]
) -> dict[str, str]:
    """Write the overridden values into ``raw``; return dotted key -> flag name."""
    flags: dict[str, str] = {}
    if "dataset.source" in overrides:
        raw["dataset"] = {}  # a new source makes the file's target, task, n_samples... moot
    for dotted, (flag, value) in overrides.items():
        flags[dotted] = flag
        if isinstance(value, str) and dotted not in _STRING_KEYS:
            value = _yaml_scalar(value)
        *parents, last = dotted.split(".")
        node: Any = raw
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif part == "sampler" and isinstance(child, str):
                child = node[part] = {"name": child}  # "sampler: tpe" -> {name: tpe}
            if not isinstance(child, dict):
                break  # the file's non-mapping value is reported when validated
            node = child
        else:
            node[last] = value
    return flags


def _yaml_scalar(text: str) -> object:
    """Read a command-line string the way YAML reads a scalar: "5" -> 5, "null" -> None."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool, type(None))) else text


def _as_int(value: object) -> int | None:
    """An int, not a bool and not a float (``20.0`` is refused for integer settings)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_float(value: object) -> float | None:
    """A finite number; strings such as "1e-3" (which YAML leaves as text) are converted."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class _Bounds:
    """An interval for a float setting, e.g. ``[0, 1)``."""

    low: float = -math.inf
    low_open: bool = False
    high: float = math.inf
    high_open: bool = True

    def __contains__(self, x: float) -> bool:
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    @property
    def text(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(["[not self.low_open], ")]"[not self.high_open]
        return f"in {left}{self.low:g}, {self.high:g}{right}"


_ANY = _Bounds()
_POSITIVE = _Bounds(0.0, low_open=True)
_NON_NEGATIVE = _Bounds(0.0)
_UNIT = _Bounds(0.0, high=1.0)


class _Validator:
    """Turns the raw mapping into spec dataclasses, raising SpaceError on the first problem."""

    def __init__(self, path: Path, source: str, flags: Mapping[str, str]) -> None:
        self.path = path
        self.source = source
        self.flags = flags

    # -- reporting ---------------------------------------------------------------------------

    def fail(
        self, key: str, rule: str, value: object = _NO_VALUE, fix: str = "", via: str = ""
    ) -> NoReturn:
        """Raise a SpaceError naming the file, or the flag that overrode ``key`` (or ``via``).

        ``{target}`` in ``fix`` becomes the key, or the flag when overridden.
        """
        flag = self.flags.get(key) or self.flags.get(via)
        fix = fix.replace("{target}", flag or key)
        raise SpaceError(flag or self.source, key, rule, value, fix, from_flag=flag is not None)

    # -- generic checks ----------------------------------------------------------------------

    def section(self, raw: Mapping[str, Any], key: str, *, required: bool = False) -> dict:
        """The mapping under ``key`` (empty if absent or null), with unknown keys rejected."""
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(key, "is required", fix=f"Add a '{key}:' section; see default.yaml.")
            return {}
        if not isinstance(value, dict):
            self.fail(
                key, "must be a mapping of settings", value, fix=f"See '{key}:' in default.yaml."
            )
        self.known_keys(value, key, _SECTION_KEYS[key])
        return value

    def known_keys(self, mapping: Mapping[Any, Any], prefix: str, known: tuple[str, ...]) -> None:
        for name, value in mapping.items():
            if name in known:
                continue
            key = f"{prefix}.{name}" if prefix else str(name)
            # a setting written outside its section first, then a typo
            home = [f"{s}.{n}" for s, ks in _SECTION_KEYS.items() if s and not prefix for n in ks]
            home = [h for h in home if h.endswith(f".{name}")]
            hint = f"Did you mean '{home[0]}'? " if home else _did_you_mean(name, known)
            where = f"in '{prefix}'" if prefix else "at the top level"
            self.fail(
                key,
                "is not a known setting",
                value,
                f"{hint}Known keys {where}: {', '.join(known)}. "
                "Unknown settings are errors because they would do nothing.",
            )

    def integer(self, key: str, value: object, minimum: int | None = None) -> int:
        number = _as_int(value)
        if number is not None and (minimum is None or number >= minimum):
            return number
        at_least = f" >= {minimum}" if minimum is not None else ""
        if isinstance(value, float) and value.is_integer():
            fix = f"Write it without a decimal point: {int(value)}."
        elif isinstance(value, bool):
            fix = "true/false are not numbers; write an integer."
        elif number is None:
            fix = f"Set {{target}} to a whole number{at_least}."
        else:
            fix = f"Set {{target}} to {minimum} or more."
        self.fail(key, f"must be an integer{at_least}", value, fix)

    def seed(self, key: str, value: object) -> int:
        seed = self.integer(key, value, minimum=0)
        if seed > _MAX_SEED:  # NumPy's and scikit-learn's seeds are 32-bit
            self.fail(
                key,
                f"must be an integer from 0 to {_MAX_SEED} (2**32 - 1)",
                value,
                "Set {target} to a smaller seed.",
            )
        return seed

    def number(self, key: str, value: object, bounds: _Bounds = _ANY) -> float:
        number = _as_float(value)
        if number is None:
            self.fail(key, f"must be a number {bounds.text}", value, "Write a number, e.g. 0.01.")
        if number not in bounds:
            fix = f"Set {{target}} to a number {bounds.text}."
            self.fail(key, f"must be a number {bounds.text}", value, fix)
        return number

    def choice(self, key: str, value: object, allowed: tuple[str, ...]) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        self.fail(
            key,
            f"must be one of {', '.join(allowed)}",
            value,
            f"{_did_you_mean(value, allowed)}Set {{target}} to one of those names.",
        )

    def nonempty_list(self, key: str, value: object, example: str) -> list:
        """A non-empty YAML list without repeated items."""
        if not isinstance(value, list) or not value:
            self.fail(key, "must be a non-empty list", value, f"Write e.g. {example}.")
        seen: set[object] = set()
        for item in value:  # one pass: a list of 200,000 items takes no time
            marker = item if isinstance(item, Hashable) else _show(item)
            if marker in seen:
                self.fail(
                    key, "must not repeat values", value, f"Remove the repeated {_show(item)}."
                )
            seen.add(marker)
        return value

    def float_param(
        self, key: str, value: object, bounds: _Bounds, example_range: str, example_list: str
    ) -> FloatParam:
        """A range mapping ``{low, high, log}`` or a list of values, all within ``bounds``."""
        if isinstance(value, dict):
            self.known_keys(value, key, _RANGE_KEYS)
            for end in ("low", "high"):
                if end not in value:
                    self.fail(
                        f"{key}.{end}", "is required in a range", fix=f"Write e.g. {example_range}."
                    )
            log = self.boolean(f"{key}.log", value.get("log", True))
            low = self.number(f"{key}.low", value["low"], bounds)
            if log and low <= 0:
                self.fail(
                    f"{key}.low",
                    "must be > 0 on a log scale",
                    value["low"],
                    f"Set {{target}} above 0, or add 'log: false' to {key}.",
                )
            high = self.number(f"{key}.high", value["high"], bounds)
            if high <= low:
                self.fail(
                    f"{key}.high",
                    f"must be greater than {key}.low ({low:g})",
                    value["high"],
                    "Swap low and high, or widen the range.",
                )
            return FloatRange(low=low, high=high, log=log)
        if isinstance(value, list):
            self.nonempty_list(key, value, example_list)
            values = []
            for i, item in enumerate(value):
                number = _as_float(item)
                if number is None or number not in bounds:
                    self.fail(
                        key,
                        f"must list numbers {bounds.text}",
                        item,
                        f"Fix item {i + 1} of the list.",
                    )
                values.append(number)
            if len(set(values)) != len(values):
                self.fail(key, "must not repeat values", value, "Remove the repeated value.")
            return FloatChoices(values=tuple(values))
        self.fail(
            key,
            "must be a range {low, high} or a list of values",
            value,
            f"Write e.g. {example_range} or {example_list}.",
        )

    def boolean(self, key: str, value: object) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(key, "must be true or false", value, "Write true or false.")

    # -- sections ----------------------------------------------------------------------------

    def name(self, raw: Mapping[str, Any]) -> str:
        value = raw.get("name")
        from_stem = value is None
        name = self.path.stem if from_stem else value
        if is_study_name(name):
            return name
        fix = f"Use {STUDY_NAME_RULE}."
        if from_stem:
            fix = f"The file name is not a valid study name; add a 'name:' line. {fix}"
        self.fail("name", "must be a study name matching " + STUDY_NAME_PATTERN, name, fix)

    def dataset(self, raw: Mapping[str, Any]) -> DatasetSpec:
        m = self.section(raw, "dataset", required=True)
        if m.get("factory") is not None:
            return self.factory_dataset(m)
        if m.get("kwargs") is not None:
            self.fail(
                "dataset.kwargs",
                "only applies with dataset.factory",
                m["kwargs"],
                "Remove it, or name your data function in dataset.factory.",
            )
        source = m.get("source")
        names = ", ".join(NAMED_DATASETS)
        if source is None:
            self.fail(
                "dataset.source",
                "is required",
                fix=f"Set {{target}} to one of {names}, or a .csv path.",
            )
        is_named = source in NAMED_DATASETS
        if not isinstance(source, str) or not (is_named or source.lower().endswith(".csv")):
            self.fail(
                "dataset.source",
                f"must be one of {names}, or a path ending in .csv",
                source,
                _did_you_mean(source, NAMED_DATASETS)
                + "Set {target} to a dataset name or a CSV path.",
            )
        spec: dict[str, Any] = {}
        if is_named:
            spec["source"] = source
            if m.get("target") is not None:
                self.fail(
                    "dataset.target",
                    f"only applies to CSV files, not to the named dataset '{source}'",
                    m["target"],
                    "Remove it: named datasets bring their own target.",
                )
        else:
            spec["source"] = self.csv_path(source)
            target = m.get("target")
            if not isinstance(target, str) or not target.strip():
                self.fail(
                    "dataset.target",
                    "is required for a CSV file: the name of the target column",
                    _NO_VALUE if target is None else target,
                    "Set dataset.target to the CSV column to predict.",
                    via="dataset.source",  # a CSV named on the command line needs its target there
                )
            spec["target"] = target
        for key in _SYNTHETIC_ONLY:
            if m.get(key) is not None and source != "synthetic":
                self.fail(
                    f"dataset.{key}",
                    "only applies to source 'synthetic'",
                    m[key],
                    f"Remove it, or set dataset.source to synthetic (it is '{source}').",
                )
        if source == "synthetic":
            checks: dict[str, Callable[[str, object], object]] = {
                "n_samples": lambda k, v: self.integer(k, v, 2),
                "n_features": lambda k, v: self.integer(k, v, 1),
                "noise": lambda k, v: self.number(k, v, _NON_NEGATIVE),
                "seed": self.seed,
            }
            for key, check in checks.items():
                if m.get(key) is not None:
                    spec[key] = check(f"dataset.{key}", m[key])
        for key, modes in _CSV_ONLY.items():
            if m.get(key) is None:
                continue
            if is_named:
                self.fail(
                    f"dataset.{key}",
                    f"only applies to CSV files, not to the named dataset '{source}'",
                    m[key],
                    "Remove it: named datasets are numeric and have no missing values.",
                )
            spec[key] = self.choice(f"dataset.{key}", m[key], modes)
        if "task" in m:
            spec["task"] = self.choice("dataset.task", m["task"], TASKS)
        return DatasetSpec(**spec)

    def factory_dataset(self, m: Mapping[str, Any]) -> DatasetSpec:
        """A user's data function: it replaces source, target and the synthetic settings."""
        for key in ("source", "target", *_SYNTHETIC_ONLY):
            if m.get(key) is not None:
                self.fail(
                    f"dataset.{key}",
                    "does not apply with dataset.factory (your function returns the data)",
                    m[key],
                    "Remove one of the two.",
                )
        for key in _CSV_ONLY:
            if m.get(key) is not None:
                self.fail(
                    f"dataset.{key}",
                    "only applies to CSV files, not with dataset.factory",
                    m[key],
                    "Remove it: your function returns the data, so encode it or drop rows there.",
                )
        spec: dict[str, Any] = {
            "source": "",
            "factory": self.reference("dataset.factory", m["factory"]),
            "kwargs": self.kwargs("dataset.kwargs", m.get("kwargs")),
        }
        if "task" in m:
            spec["task"] = self.choice("dataset.task", m["task"], TASKS)
        return DatasetSpec(**spec)

    def reference(self, key: str, value: object) -> str:
        """A user's function: "file.py:function" (made absolute, from the YAML file's folder)
        or "package.module:function"."""
        form = '"file.py:function" or "package.module:function"'
        parts = value.split(":") if isinstance(value, str) else []
        if len(parts) != 2 or not all(p.strip() for p in parts):
            self.fail(
                key,
                f"must be {form}",
                value,
                "Name the file or module, a colon, then the function.",
            )
        target, function = (p.strip() for p in parts)
        if not function.isidentifier():
            self.fail(
                key, "must end in a Python function name after the colon", value, f"Write {form}."
            )
        if target.endswith(".py"):
            path = (self.path.parent / Path(target).expanduser()).resolve()
            if not _is_file(path):
                self.fail(
                    key,
                    f"names a file that does not exist (looked for {_clip(str(path))})",
                    value,
                    "Check the path; a relative path starts at the YAML file's directory.",
                )
            return f"{path}:{function}"
        if not all(part.isidentifier() for part in target.split(".")):
            self.fail(
                key, f"must be {form}", value, "A module is dotted names, a file ends in .py."
            )
        return f"{target}:{function}"

    def kwargs(self, key: str, value: object) -> dict[str, Any]:
        """Keyword arguments for a user's function: a mapping of names to plain YAML values."""
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(
            isinstance(name, str) and name.isidentifier() for name in value
        ):
            self.fail(
                key,
                "must be a mapping of argument names to values",
                value,
                "Write e.g. {channels: 8}.",
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            self.fail(
                key,
                "must hold plain values (numbers, strings, lists, mappings)",
                value,
                "A study stores them as JSON.",
            )
        return dict(value)

    def loss_or_metric(self, raw: Mapping[str, Any], key: str, names: tuple[str, ...]) -> str:
        value = raw.get(key, "auto")
        if isinstance(value, str) and (value == "auto" or value in names):
            return value
        if isinstance(value, str) and ":" in value:
            return self.reference(key, value)
        self.fail(
            key,
            f'must be auto, one of {", ".join(names)}, or "file.py:function"',
            value,
            _did_you_mean(value, names) + "auto picks the task's usual one.",
        )

    def preprocess(self, raw: Mapping[str, Any], model: ModelSpec) -> PreprocessSpec:
        m = self.section(raw, "preprocess")
        spec = PreprocessSpec()
        if "standardize" in m:
            spec = PreprocessSpec(
                self.choice("preprocess.standardize", m["standardize"], STANDARDIZE)
            )
        if spec.standardize == "none" and model.factory is None:
            self.fail(
                "preprocess.standardize",
                "must standardise the features for the built-in MLP (auto or features)",
                "none",
                "Use auto, or name your own model in model.factory.",
            )
        return spec

    def csv_path(self, source: str) -> str:
        overridden = "dataset.source" in self.flags
        base = Path.cwd() if overridden else self.path.parent
        path = (base / Path(source).expanduser()).resolve()
        if not _is_file(path):
            relative_to = "the current directory" if overridden else "the YAML file's directory"
            self.fail(
                "dataset.source",
                f"must be an existing CSV file (looked for {_clip(str(path))})",
                source,
                f"Check the path; a relative path starts at {relative_to}.",
            )
        return str(path)

    def model(self, raw: Mapping[str, Any]) -> ModelSpec:
        m = self.section(raw, "model")
        spec: dict[str, Any] = {}
        if m.get("factory") is not None:
            for key in ("hidden", "activation", "dropout"):
                if key in m:
                    self.fail(
                        f"model.{key}",
                        "belongs to the built-in MLP and does not apply with model.factory",
                        m[key],
                        "Remove it, or pass it to your factory in model.kwargs.",
                    )
            return ModelSpec(
                factory=self.reference("model.factory", m["factory"]),
                kwargs=self.kwargs("model.kwargs", m.get("kwargs")),
            )
        if m.get("kwargs") is not None:
            self.fail(
                "model.kwargs",
                "only applies with model.factory",
                m["kwargs"],
                "Remove it, or name your model function in model.factory.",
            )
        if "hidden" in m:
            hidden = m["hidden"]
            if not isinstance(hidden, list):
                self.fail(
                    "model.hidden",
                    "must be a list of layer widths",
                    hidden,
                    "Write e.g. [64] or [64, 32]; [] is a linear model.",
                )
            for i, width in enumerate(hidden):
                if _as_int(width) is None or width < 1:
                    self.fail(
                        "model.hidden", "must list integers >= 1", width, f"Fix item {i + 1}."
                    )
            spec["hidden"] = tuple(hidden)
        if "activation" in m:
            spec["activation"] = self.choice("model.activation", m["activation"], ACTIVATIONS)
        if "dropout" in m:
            spec["dropout"] = self.number("model.dropout", m["dropout"], _UNIT)
        return ModelSpec(**spec)

    def cv(self, raw: Mapping[str, Any]) -> CVSpec:
        m = self.section(raw, "cv")
        spec: dict[str, Any] = {}
        if "folds" in m:
            spec["folds"] = self.integer("cv.folds", m["folds"], 2)
        if "stratify" in m:
            stratify = m["stratify"]
            if stratify != "auto" and not isinstance(stratify, bool):
                self.fail(
                    "cv.stratify",
                    "must be true, false or auto",
                    stratify,
                    "auto stratifies classification tasks only.",
                )
            spec["stratify"] = None if stratify == "auto" else stratify
        if "seed" in m:
            spec["seed"] = self.seed("cv.seed", m["seed"])
        return CVSpec(**spec)

    def training(self, raw: Mapping[str, Any]) -> TrainingSpec:
        m = self.section(raw, "training")
        spec: dict[str, Any] = {}
        if "epochs" in m:
            spec["epochs"] = self.integer("training.epochs", m["epochs"], 1)
        if "schedule" in m:
            spec["schedule"] = self.choice("training.schedule", m["schedule"], SCHEDULES)
        schedule = spec.get("schedule", TrainingSpec.schedule)
        for key in _STEP_ONLY:
            if m.get(key) is not None and schedule != "step":
                self.fail(
                    f"training.{key}",
                    "only applies when training.schedule is 'step'",
                    m[key],
                    f"Remove it, or set training.schedule to step (it is '{schedule}').",
                )
        if m.get("step_size") is not None:
            spec["step_size"] = self.integer("training.step_size", m["step_size"], 1)
        if m.get("gamma") is not None:
            gamma_bounds = _Bounds(0.0, low_open=True, high=1.0, high_open=False)
            spec["gamma"] = self.number("training.gamma", m["gamma"], gamma_bounds)
        if "device" in m:
            spec["device"] = self.choice("training.device", m["device"], DEVICES)
        if "precision" in m:
            spec["precision"] = self.choice("training.precision", m["precision"], PRECISIONS)
        if "capture" in m:
            # YAML reads an unquoted `off` as false; it means the mode named off.
            capture = "off" if m["capture"] is False else m["capture"]
            spec["capture"] = self.choice("training.capture", capture, CAPTURE_MODES)
        if m.get("threads", "auto") != "auto":
            spec["threads"] = self.integer("training.threads", m["threads"], 1)
        return TrainingSpec(**spec)

    def search(self, raw: Mapping[str, Any]) -> SearchSpec:
        m = self.section(raw, "search", required=True)
        for key in ("batch_size", "lr", "optimizer"):
            if m.get(key) is None:
                self.fail(f"search.{key}", "is required", fix="See 'search:' in default.yaml.")
        batch = self.nonempty_list("search.batch_size", m["batch_size"], "[32, 128, full]")
        for i, size in enumerate(batch):
            if size != "full" and (_as_int(size) is None or size < 1):
                self.fail(
                    "search.batch_size",
                    "must list integers >= 1 and/or 'full'",
                    size,
                    f"Fix item {i + 1}.",
                )
        optimizers = self.nonempty_list("search.optimizer", m["optimizer"], "[sgd, adam]")
        for optimizer in optimizers:
            self.choice("search.optimizer", optimizer, OPTIMIZERS)
        lr = self.float_param(
            "search.lr", m["lr"], _POSITIVE, "{low: 0.0001, high: 0.1}", "[0.001, 0.01, 0.1]"
        )
        spec: dict[str, Any] = {
            "batch_size": tuple(batch),
            "lr": lr,
            "optimizer": tuple(optimizers),
        }
        if m.get("weight_decay") is not None:
            spec["weight_decay"] = self.float_param(
                "search.weight_decay",
                m["weight_decay"],
                _NON_NEGATIVE,
                "{low: 0.000001, high: 0.01}",
                "[0.0, 0.0001]",
            )
        if m.get("momentum") is not None:
            if not set(optimizers) & set(MOMENTUM_OPTIMIZERS):
                users = " and ".join(MOMENTUM_OPTIMIZERS)
                self.fail(
                    "search.momentum",
                    f"is only used by the {users} optimizers, and none of them is searched",
                    m["momentum"],
                    f"Remove it, or add one of {', '.join(MOMENTUM_OPTIMIZERS)} to "
                    "search.optimizer.",
                )
            spec["momentum"] = self.float_param(
                "search.momentum",
                m["momentum"],
                _UNIT,
                "{low: 0.5, high: 0.99}",
                "[0.0, 0.9]",
            )
        if m.get("lr_scaling") is not None:
            spec["lr_scaling"] = self.lr_scaling(m["lr_scaling"])
        return SearchSpec(**spec)

    def lr_scaling(self, value: object) -> LrScaling:
        if not isinstance(value, Mapping):
            self.fail(
                "search.lr_scaling",
                "must be a mapping",
                value,
                "Write e.g. lr_scaling: {rule: auto, reference_batch_size: 32}.",
            )
        unknown = sorted(set(value) - {"rule", "reference_batch_size"})
        if unknown:
            self.fail(
                f"search.lr_scaling.{unknown[0]}",
                "is not a setting (allowed: rule, reference_batch_size)",
                value[unknown[0]],
                "Remove it.",
            )
        spec: dict[str, Any] = {}
        if "rule" in value:
            spec["rule"] = self.choice("search.lr_scaling.rule", value["rule"], LR_SCALING_RULES)
        if "reference_batch_size" in value:
            spec["reference_batch_size"] = self.integer(
                "search.lr_scaling.reference_batch_size", value["reference_batch_size"], 1
            )
        return LrScaling(**spec)

    def objectives(
        self, raw: Mapping[str, Any], pruner: str, sampler: SamplerSpec
    ) -> tuple[str, ...]:
        value = raw.get("objectives", ["cv_loss"])
        names = self.nonempty_list("objectives", value, "[cv_loss, epoch_seconds]")
        for name in names:
            self.choice("objectives", name, OBJECTIVES)
        if names[0] != "cv_loss" or len(set(names)) != len(names):
            self.fail(
                "objectives",
                "must start with cv_loss and name each objective once",
                value,
                "Use [cv_loss] or [cv_loss, epoch_seconds].",
            )
        if len(names) > 1 and pruner != "none":
            self.fail(
                "pruner",
                "must be none when there are several objectives (Optuna cannot prune those)",
                pruner,
                "Set pruner: none, or use objectives: [cv_loss].",
            )
        if len(names) > 1 and sampler.name == "cmaes":
            self.fail(
                "sampler.name",
                "cmaes handles one objective only",
                sampler.name,
                "Use tpe, random, grid or gp with several objectives.",
            )
        return tuple(names)

    def sampler(self, raw: Mapping[str, Any]) -> SamplerSpec:
        value = raw.get("sampler")
        if value is None:
            return SamplerSpec()
        if isinstance(value, str):
            return SamplerSpec(name=self.choice("sampler", value, SAMPLERS))
        if not isinstance(value, dict):
            self.fail(
                "sampler",
                "must be a sampler name or a mapping {name, seed}",
                value,
                "Write e.g. 'sampler: tpe' or 'sampler: {name: tpe, seed: 0}'.",
            )
        m = self.section(raw, "sampler")
        spec: dict[str, Any] = {}
        if "name" in m:
            spec["name"] = self.choice("sampler.name", m["name"], SAMPLERS)
        if "seed" in m:
            spec["seed"] = None if m["seed"] is None else self.seed("sampler.seed", m["seed"])
        return SamplerSpec(**spec)

    def budget(self, raw: Mapping[str, Any]) -> BudgetSpec:
        m = self.section(raw, "budget")
        spec: dict[str, Any] = {}
        if "trials" in m:
            spec["trials"] = self.integer("budget.trials", m["trials"], 1)
        if "group_size" in m:
            spec["group_size"] = self.integer("budget.group_size", m["group_size"], 1)
        if m.get("timeout_seconds") is not None:
            spec["timeout_seconds"] = self.number(
                "budget.timeout_seconds", m["timeout_seconds"], _POSITIVE
            )
        return BudgetSpec(**spec)

    def grid_needs_lists(self, search: SearchSpec, examples: Mapping[str, str]) -> None:
        for name, example in examples.items():
            param = getattr(search, name)
            if isinstance(param, FloatRange):
                self.fail(
                    f"search.{name}",
                    f"is a range, but the grid sampler needs a list of values for "
                    f"search.{name}, e.g. {name}: {example}",
                    {"low": param.low, "high": param.high},
                    "Write a list, or choose another sampler (tpe, random, gp, cmaes).",
                )

    def spec(self, raw: Mapping[str, Any]) -> SweepSpec:
        self.known_keys(raw, "", _SECTION_KEYS[""])
        name = self.name(raw)
        dataset = self.dataset(raw)
        model = self.model(raw)
        cv = self.cv(raw)
        training = self.training(raw)
        search = self.search(raw)
        sampler = self.sampler(raw)
        if "pruner" in raw:
            pruner = self.choice("pruner", raw["pruner"], PRUNERS)
        else:
            pruner = SweepSpec.pruner
        objectives = self.objectives(raw, pruner, sampler)
        budget = self.budget(raw)
        loss = self.loss_or_metric(raw, "loss", LOSS_NAMES)
        metric = self.loss_or_metric(raw, "metric", METRIC_NAMES)
        preprocess = self.preprocess(raw, model)
        if sampler.name == "grid":
            examples = {
                "lr": "[0.001, 0.01]",
                "weight_decay": "[0.0, 0.0001]",
                "momentum": "[0.0, 0.9]",
            }
            self.grid_needs_lists(search, examples)
        return SweepSpec(
            name=name,
            path=str(self.path),
            dataset=dataset,
            model=model,
            cv=cv,
            training=training,
            search=search,
            sampler=sampler,
            pruner=pruner,
            budget=budget,
            objectives=objectives,
            loss=loss,
            metric=metric,
            preprocess=preprocess,
        )


def load_space(
    name_or_path: str, *, overrides: Mapping[str, tuple[str, object]] | None = None
) -> SweepSpec:
    """Load and validate a search space.

    Args:
        name_or_path: a bundled space name (``"default"``) or a path to a YAML file; see
            :func:`resolve_space_path`.
        overrides: dotted key -> ``(flag_name, value)``, written into the YAML mapping before
            validation. Errors about an overridden key name the flag instead of the file.
            String values are read as YAML scalars ("5" -> 5), except for string settings
            such as ``name`` and ``dataset.source``. Overriding ``dataset.source`` replaces
            the file's whole ``dataset`` section (its target, task and synthetic settings
            described another dataset); a relative CSV path given this way is relative to
            the current directory.

    Returns:
        The validated, frozen :class:`~search_spaces.spec.SweepSpec`.

    Raises:
        SpaceError: the file is missing or invalid, or an override is.

    Example:
        >>> spec = load_space("default", overrides={"budget.trials": ("--trials", 5)})
        >>> spec.budget.trials, spec.dataset.source
        (5, 'diabetes')
    """
    path = resolve_space_path(name_or_path)
    source = _display(path)
    raw = _read_yaml(path, source)
    flags = _apply_overrides(raw, overrides or {})
    return _Validator(path, source, flags).spec(raw)


def load_space_mapping(
    raw: Mapping[str, Any],
    *,
    path: Path,
    source: str,
    overrides: Mapping[str, tuple[str, object]] | None = None,
) -> SweepSpec:
    """Validate a search space given as a mapping (what a YAML file holds), as :func:`load_space`
    does a file. ``path``: where relative file references start (its folder) and the default
    study name (its stem); ``source``: how messages name the mapping.
    """
    if not isinstance(raw, Mapping):
        raise SpaceError(source, None, "must be a mapping of settings", raw, fix="Pass a dict.")
    raw = copy.deepcopy(dict(raw))
    flags = _apply_overrides(raw, overrides or {})
    spec = _Validator(path, source, flags).spec(raw)
    return dataclasses.replace(spec, path=source)


def read_space(name_or_path: str) -> tuple[Path, dict[str, Any]]:
    """A bundled space's or a YAML file's path and raw mapping, not yet validated."""
    path = resolve_space_path(name_or_path)
    return path, _read_yaml(path, _display(path))
