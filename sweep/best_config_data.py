"""The best config as plain data: its dataclasses and its file format, JSON or YAML (read with
``yaml.safe_load``), never pickle. :mod:`sweep.best_config` is the public import."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# torch-free, like this module: torch loads only when an optimizer or scheduler is built
from sweep.guards.safe_files import write_atomically as write_atomically  # public: best_config
from sweep.lr_scaling import scaled_lr
from trainers.vocabulary import OPTIMIZERS

SCHEMA = "batchsweep.best_config/1"
ARTIFACT_FILE = "best_config.json"


@dataclass(frozen=True)
class Provenance:
    """Where a best config came from, so a result can be traced and reproduced."""

    study: str
    trial_number: int
    cv_val_loss: float  # CV-mean validation loss of the trial (the score minimised)
    cv_val_loss_std: float  # its standard deviation over folds
    metric_name: str  # "r2" or "accuracy"
    cv_metric: float
    cv_metric_std: float
    n_folds: int
    epochs: int
    seed: int
    dataset: str
    data_fingerprint: str
    versions: dict[str, str] = field(default_factory=dict)
    selection_rule: str = "argmin"  # how the batch size was chosen: one-standard-error or argmin
    argmin_trial_number: int | None = None  # the trial with the lowest CV loss overall


@dataclass(frozen=True)
class BestConfig:
    """Batch size, learning rate, optimizer and schedule chosen by a sweep.

    Example:
        >>> best = load_best_config("best.json")
        >>> optimizer = best.make_optimizer(model.parameters())
        >>> scheduler = best.make_scheduler(optimizer)  # step it once per epoch
    """

    batch_size: int | str  # an int, or "full" (the whole training set in one batch)
    lr: float
    optimizer: str  # batchsweep's name: sgd, momentum, adam, adamw or rmsprop
    optimizer_kwargs: dict[str, float]  # the rest of torch's arguments (weight_decay, momentum)
    schedule: dict[str, Any]  # {"name": none|cosine|step, "epochs": N, "step_size": N, "gamma": x}
    # the built-in MLP ({"hidden": [...], "activation": ..., "dropout": ...}) or the user's
    # {"factory": "file.py:function", "kwargs": {...}}
    model: dict[str, Any]
    provenance: Provenance
    # With lr_scaling in the search space: {"rule": linear|sqrt, "reference_batch_size": N,
    # "base_lr": x, "full_batch_size": N}; lr_for() applies it. None: lr does not scale.
    lr_scaling: dict[str, Any] | None = None
    # What the trials trained: one sample's shape and the model's outputs (classes, or values),
    # the loss and metric by name or "file.py:function", and the preprocessing. None in configs
    # exported before these were recorded.
    input_shape: list[int] | None = None
    n_outputs: int | None = None
    loss: str | None = None
    metric: str | None = None
    preprocessing: dict[str, Any] | None = None

    @property
    def torch_optimizer(self) -> str:
        """The ``torch.optim`` class name, e.g. ``"Adam"``."""
        return OPTIMIZERS[self.optimizer].torch_class_name

    def lr_for(self, batch_size: int | str) -> float:
        """The learning rate for another batch size, by the sweep's scaling rule (if any).

        Example:
            >>> best.lr_for(256)  # linear rule, reference 32, base 0.01: 0.08
        """
        if self.lr_scaling is None:
            return self.lr
        size = self.lr_scaling["full_batch_size"] if batch_size == "full" else int(batch_size)
        return scaled_lr(
            self.lr_scaling["base_lr"],
            rule=self.lr_scaling["rule"],
            optimizer=self.optimizer,
            batch_size=size,
            reference=self.lr_scaling["reference_batch_size"],
        )

    def build_model(self) -> Any:
        """A new, untrained instance of the model the sweep tuned: the user's factory called as
        it was in the sweep, or the built-in MLP.

        Example:
            >>> model = best.build_model()
            >>> optimizer = best.make_optimizer(model.parameters())
        """
        if self.input_shape is None or self.n_outputs is None:
            raise ValueError(
                "this best config was exported before it recorded the model's input shape; "
                "export it again with `sweep best --study NAME -o best.json`."
            )
        shape = tuple(self.input_shape)
        if self.model.get("factory"):
            from trainers.user_code import load_callable  # the user's code loads only here

            factory = load_callable(self.model["factory"])
            return factory(input_shape=shape, n_outputs=self.n_outputs, **self.model["kwargs"])
        from trainers.stacked_mlp import MLPConfig, build_mlp  # torch: only to build a model

        mlp = MLPConfig(
            hidden=tuple(self.model["hidden"]),
            activation=self.model["activation"],
            dropout=self.model["dropout"],
        )
        return build_mlp(shape[0], self.n_outputs, mlp)

    def load_model(self, path: str | os.PathLike) -> Any:
        """The model ``sweep refit`` trained and saved at ``path``: :meth:`build_model`'s module
        holding the saved weights, behind the standardisation it trained with, in eval mode. The
        file is read with ``torch.load(weights_only=True)``: tensors only, never code.

        Example:
            >>> model = load_best_config("default").load_model("mlruns/models/default.pt")
            >>> predictions = model(torch.as_tensor(X_new))
        """
        import torch  # only when a model is loaded

        from trainers.refit import FittedModel

        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a state dict (found {type(state).__name__}).")
        try:
            return FittedModel.from_state_dict(self.build_model(), state).eval()
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def make_optimizer(self, params: Any) -> Any:
        """A ``torch.optim`` optimizer over ``params`` with the chosen LR and arguments."""
        import torch  # only when an optimizer or scheduler is built

        optimizer_class = getattr(torch.optim, self.torch_optimizer)
        return optimizer_class(params, lr=self.lr, **self.optimizer_kwargs)

    def make_scheduler(self, optimizer: Any) -> Any:
        """A per-epoch ``LambdaLR`` reproducing the schedule the sweep trained with."""
        import torch  # only when an optimizer or scheduler is built

        name, epochs = self.schedule["name"], self.schedule["epochs"]
        step_size, gamma = self.schedule.get("step_size", 10), self.schedule.get("gamma", 0.1)

        def factor(epoch: int) -> float:
            if name == "cosine":
                return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
            if name == "step":
                return gamma ** (epoch // step_size)
            return 1.0

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> BestConfig:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"{source}: not a batchsweep best config (expected schema {SCHEMA!r}, got {found!r}). "
                "Export one with `sweep best --study NAME -o best.json`."
            )
        fields = {key: value for key, value in data.items() if key != "schema"}
        try:
            provenance = Provenance(**fields.pop("provenance"))
            return cls(provenance=provenance, **fields)
        except (KeyError, TypeError) as err:
            raise ValueError(f"{source}: malformed best config: {err}") from err


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("batchsweep", "torch", "optuna", "mlflow", "scikit-learn", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def dumps(config: BestConfig, fmt: str) -> str:
    """The config as JSON or YAML text."""
    data = config.to_dict()
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"


def read_config_file(path: Path) -> BestConfig:
    import yaml

    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return BestConfig.from_dict(data, source=str(path))
