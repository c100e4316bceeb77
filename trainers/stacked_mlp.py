"""A stack of identically shaped MLPs whose parameters live in one ``(n_models, n_params)`` tensor.

One flat tensor means one gradient tensor and one optimizer update per step for the whole stack,
whatever the depth. Each linear layer is a batched matmul over the stack
(:func:`trainers.stacked_linear.linear_forward`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainers import vocabulary
from trainers.stacked_linear import linear_forward

# Keyed by trainers.vocabulary.ACTIVATIONS, in its order; the assert keeps the two in step.
ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
}
_ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}
assert tuple(ACTIVATIONS) == tuple(_ACTIVATION_MODULES) == vocabulary.ACTIVATIONS, (
    f"stacked_mlp's activations {tuple(ACTIVATIONS)} must be trainers.vocabulary.ACTIVATIONS "
    f"{vocabulary.ACTIVATIONS}: add the function and the nn module of each name there."
)


@dataclass(frozen=True)
class MLPConfig:
    """Shape of the model every trial trains."""

    hidden: tuple[int, ...] = (50,)  # hidden-layer widths; () gives a linear model
    activation: str = "relu"  # one of ACTIVATIONS
    dropout: float = 0.0  # dropout after each hidden activation, in [0, 1)

    def __post_init__(self) -> None:
        if self.activation not in vocabulary.ACTIVATIONS:
            raise ValueError(
                f"activation={self.activation!r} is not one of {vocabulary.ACTIVATIONS}."
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), but got dropout={self.dropout}.")
        if any(width < 1 for width in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, but got hidden={self.hidden}.")


@dataclass(frozen=True)
class _Layer:
    weight_start: int  # offset of the (n_in, n_out) weight block in a row of the flat tensor
    bias_start: int
    n_in: int
    n_out: int


def build_mlp(n_inputs: int, n_outputs: int, config: MLPConfig) -> nn.Sequential:
    """The MLP factory: a plain ``nn.Sequential`` of the shape a sweep searched over.

    Example:
        >>> build_mlp(10, 1, MLPConfig(hidden=(50,)))
        Sequential(
          (0): Linear(in_features=10, out_features=50, bias=True)
          (1): ReLU()
          (2): Linear(in_features=50, out_features=1, bias=True)
        )
    """
    widths = [n_inputs, *config.hidden, n_outputs]
    layers: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if index < len(widths) - 2:
            layers.append(_ACTIVATION_MODULES[config.activation]())
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
    return nn.Sequential(*layers)


class StackedMLP:
    """The layout and forward pass of ``n_models`` MLPs stored row-wise in one flat tensor.

    Example:
        >>> mlp = StackedMLP(10, 1, MLPConfig(hidden=(50,)))
        >>> flat = mlp.init_flat(5, seed=0, device=torch.device("cpu"))
        >>> mlp.forward(flat, torch.zeros(5, 32, 10)).shape
        torch.Size([5, 32, 1])
    """

    def __init__(self, n_inputs: int, n_outputs: int, config: MLPConfig) -> None:
        self.config = config
        self.n_inputs, self.n_outputs = n_inputs, n_outputs
        widths = [n_inputs, *config.hidden, n_outputs]
        self.layers: list[_Layer] = []
        offset = 0
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            self.layers.append(_Layer(offset, offset + n_in * n_out, n_in, n_out))
            offset += n_in * n_out + n_out
        self.n_params = offset
        self._activation = ACTIVATIONS[config.activation]

    def init_flat(self, n_models: int, *, seed: int, device: torch.device) -> Tensor:
        """Initial parameters, drawn as ``nn.Linear`` does: U(-1/sqrt(n_in), 1/sqrt(n_in)).

        The draw happens on the CPU with a seeded generator, so a seed gives the same weights on
        every device.
        """
        generator = torch.Generator().manual_seed(seed)
        flat = torch.empty(n_models, self.n_params)
        for layer in self.layers:
            bound = 1 / math.sqrt(layer.n_in)
            end = layer.bias_start + layer.n_out
            flat[:, layer.weight_start : end].uniform_(-bound, bound, generator=generator)
        return flat.to(device)

    def forward(
        self,
        flat: Tensor,
        inputs: Tensor,
        *,
        dropout_generator: torch.Generator | None = None,
        dropout_draws: list[Tensor] | None = None,
    ) -> Tensor:
        """Outputs ``(n_models, batch, n_outputs)`` for inputs ``(n_models, batch, n_inputs)``.

        Dropout applies only in training: drawn from ``dropout_generator`` so that runs are
        reproducible, or taken from ``dropout_draws`` (see :meth:`draw_dropout`).
        """
        hidden = inputs
        for index, layer in enumerate(self.layers):
            weight, bias = self.layer_views(flat, layer)
            hidden = linear_forward(hidden, weight, bias)
            if index < len(self.layers) - 1:
                hidden = self._activation(hidden)
                draw = self.dropout_draw(index, hidden, dropout_generator, dropout_draws)
                if draw is not None:
                    keep = 1 - self.config.dropout
                    hidden = hidden * (draw < keep) / keep
        return hidden

    def draw_dropout(
        self, n_models: int, batch: int, generator: torch.Generator, device: torch.device
    ) -> list[Tensor]:
        """The uniform draws a training step's dropout takes, drawn ahead of the step in the
        order the step itself would draw them: one ``(n_models, batch, width)`` per hidden layer."""
        return [
            torch.rand((n_models, batch, layer.n_out), generator=generator, device=device)
            for layer in self.layers[:-1]
        ]

    def dropout_draw(
        self,
        index: int,
        hidden: Tensor,
        generator: torch.Generator | None,
        draws: list[Tensor] | None,
    ) -> Tensor | None:
        """Hidden layer ``index``'s uniform draws, or None when no dropout applies."""
        if self.config.dropout == 0:
            return None
        if draws is not None:
            return draws[index]
        if generator is None:
            return None
        return torch.rand(hidden.shape, generator=generator, device=hidden.device)

    @staticmethod
    def layer_views(flat: Tensor, layer: _Layer) -> tuple[Tensor, Tensor]:
        """The ``(n_models, n_in, n_out)`` weight and ``(n_models, 1, n_out)`` bias of a layer."""
        n_models = flat.shape[0]
        weight = flat[:, layer.weight_start : layer.bias_start].view(
            n_models, layer.n_in, layer.n_out
        )
        bias = flat[:, layer.bias_start : layer.bias_start + layer.n_out].view(
            n_models, 1, layer.n_out
        )
        return weight, bias

    def to_module(self, flat_row: Tensor) -> nn.Sequential:
        """One row of the stack as an ordinary ``nn.Sequential`` holding a copy of its weights."""
        module = build_mlp(self.n_inputs, self.n_outputs, self.config).to(flat_row.device)
        linears = [m for m in module if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for linear, layer in zip(linears, self.layers):
                weight = flat_row[layer.weight_start : layer.bias_start].view(
                    layer.n_in, layer.n_out
                )
                linear.weight.copy_(weight.T)
                linear.bias.copy_(flat_row[layer.bias_start : layer.bias_start + layer.n_out])
        return module
