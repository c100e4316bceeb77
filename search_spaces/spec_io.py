"""A validated :class:`SweepSpec` as plain JSON-able data and back.

A study stores its spec this way, so that a worker on another host can join the study with only
its name and storage URL: no copy of the YAML file needed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from search_spaces.spec import (
    BudgetSpec,
    CVSpec,
    DatasetSpec,
    FloatChoices,
    FloatRange,
    LrScaling,
    ModelSpec,
    PreprocessSpec,
    SamplerSpec,
    SearchSpec,
    SweepSpec,
    TrainingSpec,
)


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    for name in ("lr", "weight_decay", "momentum"):
        param = getattr(spec.search, name)
        if param is not None:
            data["search"][name]["kind"] = "range" if isinstance(param, FloatRange) else "choices"
    return data


def spec_from_dict(data: dict[str, Any]) -> SweepSpec:
    search = dict(data["search"])
    for name in ("lr", "weight_decay", "momentum"):
        search[name] = _float_param(search.get(name))
    search["batch_size"] = tuple(search["batch_size"])
    if search.get("lr_scaling") is not None:
        search["lr_scaling"] = LrScaling(**search["lr_scaling"])
    search["optimizer"] = tuple(search["optimizer"])
    model = dict(data["model"], hidden=tuple(data["model"]["hidden"]))
    preprocess = PreprocessSpec(**data.get("preprocess", {}))
    return SweepSpec(
        name=data["name"],
        path=data["path"],
        dataset=DatasetSpec(**data["dataset"]),
        model=ModelSpec(**model),
        cv=CVSpec(**data["cv"]),
        training=TrainingSpec(**data["training"]),
        search=SearchSpec(**search),
        sampler=SamplerSpec(**data["sampler"]),
        pruner=data["pruner"],
        budget=BudgetSpec(**data["budget"]),
        objectives=tuple(data.get("objectives", ("cv_loss",))),
        loss=data.get("loss", "auto"),
        metric=data.get("metric", "auto"),
        preprocess=preprocess,
    )


def _float_param(data: dict[str, Any] | None) -> FloatRange | FloatChoices | None:
    if data is None:
        return None
    data = dict(data)
    if data.pop("kind") == "range":
        return FloatRange(**data)
    return FloatChoices(values=tuple(data["values"]))
