"""A plain ``nn.Sequential`` of common layers, trained as a stack without vmap.

What: :meth:`StackedProgram.compile` reads an ``nn.Sequential`` whose layers it knows
(``Linear``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``LayerNorm``,
``BatchNorm1d``, ``BatchNorm2d`` (momentum set), ``ReLU``, ``Tanh``, ``Sigmoid``, ``GELU``,
``Flatten``, ``Identity``, ``Dropout``; the first ``Conv2d`` takes the ``ReLU`` and
``MaxPool2d`` that follow it into one layer; layers without parameters that change shapes come
after the first with parameters) into a list of stacked layers (:mod:`._program_layers`), each
with a hand-written backward. The stack then runs each layer once for all its models, and the
first layer with parameters reads each fold's data once for all the positions (trials) that
share it.

Why: through ``vmap(functional_call(...))`` a small model's step is mostly per-op overhead:
pytree flattening, functional_call's parameter swapping, the vmap rules and autograd's graph, a
few milliseconds a step on a 2-core CPU, where a plain model's whole step takes under one. The
program does the same arithmetic in about a third of the ops.

Every compiled program is checked once before training: its outputs, its gradients and the
running statistics it leaves, on a few real samples, must match the module's own (autograd), or
the stack uses vmap instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainers.losses import Loss
from trainers.module_engine._program_layers import (
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Elementwise,
    Flatten,
    FoldConvBlock,
    FoldLinear,
    LayerNorm,
    Linear,
    MaxPool2d,
)
from trainers.module_engine._stack import ModuleStack, Probe, probe_vmap

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU)
PATCH_TABLE_BYTES = 256 * 2**20  # every sample's first-layer patches, kept when they fit
EVAL_CHUNK_BYTES = 2**20  # a first layer's output per evaluation chunk on the CPU: in cache
DEVICE_EVAL_CHUNK_BYTES = 256 * 2**20  # elsewhere: few launches, bounded memory


class StackedProgram:
    """The layers of a compiled ``nn.Sequential``; see the module docstring.

    Example:
        >>> module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> program, why = StackedProgram.compile(module, (4,))
        >>> program.layer_names
        ['Linear', 'ReLU', 'Linear']
    """

    def __init__(self, layers: list[Any], layer_names: list[str], names: list[str]) -> None:
        self.layers, self.layer_names, self.names = layers, layer_names, names

    @classmethod
    def compile(
        cls, module: nn.Module, sample_shape: Sequence[int]
    ) -> tuple[StackedProgram | None, str]:
        """The program of ``module``, or None and the reason it has none."""
        if type(module) is not nn.Sequential:
            return None, f"it is a {type(module).__name__}, not an nn.Sequential"
        if not all(p.requires_grad for p in module.parameters()):
            return None, "some of its parameters are frozen"
        layers: list[Any] = []
        names: list[str] = []
        children = list(module.named_children())
        shared = True  # no layer with parameters yet: the data is each fold's own
        index = 0
        while index < len(children):
            name, child = children[index]
            prefix = f"{name}."
            kind = type(child)
            if kind is nn.Linear:
                layers.append(FoldLinear(prefix, child) if shared else Linear(prefix, child))
                names.append("Linear")
                shared = False
            elif kind is nn.Conv2d and not shared:
                if child.padding_mode != "zeros" or isinstance(child.padding, str):
                    return None, f"its layer {name!r} is a Conv2d the program does not run"
                layers.append(Conv2d(prefix, child))
                names.append("Conv2d")
            elif kind is nn.Conv2d:
                block = _conv_block(prefix, children[index:], sample_shape, shared)
                if block is None:
                    return None, f"its layer {name!r} is a Conv2d the program does not run"
                layer, used = block
                layers.append(layer)
                names.append("+".join(type(c).__name__ for _, c in children[index : index + used]))
                index += used
                shared = False
                continue
            elif kind in _ELEMENTWISE:
                layers.append(Elementwise(child))
                names.append(kind.__name__)
            elif kind is nn.MaxPool2d and not child.return_indices and not shared:
                layers.append(MaxPool2d(child))
                names.append("MaxPool2d")
            elif kind in (nn.AvgPool2d, nn.AdaptiveAvgPool2d) and not shared:
                layers.append(AvgPool2d(child))
                names.append(kind.__name__)
            elif kind is nn.LayerNorm and not shared:
                layers.append(LayerNorm(prefix, child))
                names.append("LayerNorm")
            elif kind in (nn.BatchNorm1d, nn.BatchNorm2d) and not shared:
                if child.momentum is None:
                    return None, f"its layer {name!r} is a {kind.__name__} with momentum=None"
                layers.append(BatchNorm(prefix, child))
                names.append(kind.__name__)
            elif kind is nn.Flatten and child.start_dim == 1 and child.end_dim == -1:
                layers.append(Flatten())
                names.append("Flatten")
            elif kind is nn.Identity or (kind is nn.Dropout and child.p == 0):
                pass
            elif kind is nn.Dropout and not shared:
                layers.append(Dropout(child.p))
                names.append("Dropout")
            else:
                return None, f"its layer {name!r} ({kind.__name__}) is not one the program runs"
            index += 1
        if shared:
            return None, "it has no Linear or Conv2d layer"
        trainable = [n for n, _ in module.named_parameters()]
        program = cls(layers, names, trainable)
        if sorted(program.parameter_names()) != sorted(trainable):
            return None, "its parameters are not all held by the layers the program runs"
        held = {n for layer in layers for n in getattr(layer, "buffer_names", lambda: [])()}
        if {n for n, _ in module.named_buffers()} != held:
            return None, "it holds buffers outside BatchNorm's running statistics"
        return program, ""

    def parameter_names(self) -> list[str]:
        return [
            name
            for layer in self.layers
            for name in (getattr(layer, "weight", None), getattr(layer, "bias", None))
            if name is not None
        ]

    def prepared(self, inputs: Tensor, max_bytes: int = PATCH_TABLE_BYTES) -> tuple[Tensor, bool]:
        """What a training step indexes by sample, and whether it is patches: ``inputs``
        ``(n_rows, *sample_shape)`` (False), or, when the first layer is a convolution and they
        fit in ``max_bytes``, every sample's patches, made once instead of at every step (True).
        Pass the rows of it with ``prepared`` set to that flag."""
        first = self.layers[self._first()]
        if self._first() != 0 or not isinstance(first, FoldConvBlock):
            return inputs, False  # a layer before it changes what the convolution reads
        in_channels = inputs.shape[1]
        per_sample = (
            first.conv_hw[0] * first.conv_hw[1] * in_channels * first.kernel[0] * first.kernel[1]
        )
        if per_sample * inputs.shape[0] * inputs.element_size() > max_bytes:
            return inputs, False
        return first.patches(inputs), True

    def _first(self) -> int:
        return next(
            i
            for i, layer in enumerate(self.layers)
            if isinstance(layer, (FoldLinear, FoldConvBlock))
        )

    def _run(
        self,
        params: dict[str, Tensor],
        fold_inputs: Tensor,
        train: bool,
        prepared: bool = False,
        dropout: bool = True,
    ) -> tuple[Tensor, list[Any], int]:
        """Outputs ``(n_models, batch, ...)``, each layer's saved values, and the index of the
        first layer with parameters (the backward stops there). ``dropout=False`` trains with
        the dropout layers off (the check against the module in evaluation mode)."""
        x, saved, first = fold_inputs, [], None
        for index, layer in enumerate(self.layers):
            if first is None and isinstance(layer, FoldConvBlock) and not prepared:
                x = layer.patches(x)
            if first is None and isinstance(layer, (FoldLinear, FoldConvBlock)):
                first = index
            mode = train and (dropout or not isinstance(layer, Dropout))
            x, keep = layer.forward(x, params, mode)
            saved.append(keep if train else None)
        assert first is not None
        return x, saved, first

    def forward(
        self,
        views: dict[str, Tensor],
        fold_inputs: Tensor,
        state: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Evaluation outputs ``(n_models, batch, ...)`` of each fold's inputs
        ``(n_folds, batch, *sample_shape)``; rows are ``position * n_folds + fold``. ``state``:
        the rows' running statistics (BatchNorm), ``(n_models, ...)`` by buffer name.

        Runs in chunks of samples whose first-layer output fits in about a megabyte on the CPU
        (it stays in cache), 256 MiB on other devices."""
        n_models = next(iter(views.values())).shape[0]
        first = self.layers[self._first()]
        width = first.n_out * n_models
        if isinstance(first, FoldConvBlock):
            width *= first.conv_hw[0] * first.conv_hw[1]
        limit = EVAL_CHUNK_BYTES if fold_inputs.device.type == "cpu" else DEVICE_EVAL_CHUNK_BYTES
        chunk = max(1, limit // (4 * width))
        params = {**views, **(state or {})}
        with torch.no_grad():
            outputs = [
                self._run(params, fold_inputs[:, start : start + chunk], train=False)[0]
                for start in range(0, fold_inputs.shape[1], chunk)
            ]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)

    def loss_and_grad(
        self,
        views: dict[str, Tensor],
        fold_inputs: Tensor,
        targets: Tensor,
        loss: Loss,
        *,
        state: Mapping[str, Tensor] | None = None,
        prepared: bool = False,
        dropout: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Each row's mean loss ``(n_models,)`` and its gradient ``(n_models, n_params)`` in the
        flat layout (``views``' order). ``fold_inputs``: ``(n_folds, batch, ...)`` samples, or
        rows of :meth:`prepared` with ``prepared=True``. ``state``: the rows' running
        statistics, updated in place as the module's own are in training mode."""
        params = {**views, **(state or {})}
        with torch.no_grad():
            outputs, saved, first = self._run(
                params, fold_inputs, train=True, prepared=prepared, dropout=dropout
            )
        row_loss, grad = loss.mean_and_grad(outputs, targets)
        grads: dict[str, Tensor] = {}
        with torch.no_grad():
            for index in range(len(self.layers) - 1, first - 1, -1):
                grad = self.layers[index].backward(grad, saved[index], params, grads)
            n_models = outputs.shape[0]
            columns = [grads[name].reshape(n_models, -1) for name in views]
            return row_loss, torch.cat(columns, dim=1)


def _conv_block(
    prefix: str, children: list[tuple[str, nn.Module]], sample_shape: Sequence[int], shared: bool
) -> tuple[FoldConvBlock, int] | None:
    """A first ``Conv2d`` with the ``ReLU`` and ``MaxPool2d`` after it, and how many layers it
    takes; None when the program cannot run it."""
    conv = children[0][1]
    assert isinstance(conv, nn.Conv2d)
    if (
        not shared
        or len(sample_shape) != 3
        or conv.groups != 1
        or conv.padding_mode != "zeros"
        or isinstance(conv.padding, str)
    ):
        return None
    used, relu, pool = 1, False, None
    if len(children) > used and type(children[used][1]) is nn.ReLU:
        relu, used = True, used + 1
    if len(children) > used and type(children[used][1]) is nn.MaxPool2d:
        candidate = children[used][1]
        if not candidate.return_indices:
            pool, used = candidate, used + 1
    return FoldConvBlock(prefix, conv, relu, pool, tuple(sample_shape)), used


def check_program(
    program: StackedProgram,
    module: nn.Module,
    names: Sequence[str],
    inputs: Tensor,
    targets: Tensor,
    loss: Loss,
) -> str | None:
    """What differs between ``program`` and ``module`` (autograd) on a few real samples
    ``inputs``/``targets``: the evaluation outputs, the training loss, the gradients or the
    running statistics a training step leaves; None when they agree.

    Runs on a copy of ``module``, as two positions of one fold of the program, with dropout off
    on both sides: dropout, the one random layer the program runs, is checked by the tests.
    """
    if not inputs.is_floating_point():
        return f"its inputs are {inputs.dtype}, not floating point"
    module = copy.deepcopy(module)
    params = dict(module.named_parameters())
    rows = torch.cat([params[n].detach().reshape(-1) for n in names]).unsqueeze(0).repeat(2, 1)
    split = rows.split([params[n].numel() for n in names], dim=1)
    views = {n: s.view(2, *params[n].shape) for n, s in zip(names, split)}
    state = {
        n: b.detach().unsqueeze(0).repeat(2, *[1] * b.dim()) for n, b in module.named_buffers()
    }
    two_targets = targets.unsqueeze(0).repeat(2, *[1] * targets.dim())
    try:
        with torch.no_grad():
            evaluated = module.eval()(inputs)
        module.train()
        for layer in module.modules():
            if isinstance(layer, nn.Dropout):
                layer.eval()
        with torch.enable_grad():
            expected = module(inputs)
            expected_loss = loss.stacked(expected.unsqueeze(0), targets.unsqueeze(0)).mean()
            expected_grads = torch.autograd.grad(expected_loss, [params[n] for n in names])
        outputs = program.forward(views, inputs.unsqueeze(0), state)
        row_loss, grad = program.loss_and_grad(
            views, inputs.unsqueeze(0), two_targets, loss, state=state, dropout=False
        )
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        return f"the stacked program failed: {type(error).__name__}: {error}"
    wanted = torch.cat([g.reshape(-1) for g in expected_grads])
    close = dict(rtol=1e-4, atol=1e-5)
    if outputs.shape[1:] != evaluated.shape or not torch.allclose(outputs[0], evaluated, **close):
        return "the stacked program's outputs differ from the module's own"
    if not torch.allclose(row_loss, expected_loss.detach().expand(2), **close):
        return "the stacked program's loss differs from the module's own"
    if not torch.allclose(grad, wanted.expand(2, -1), **close):
        return "the stacked program's gradients differ from the module's own"
    for name, buffer in module.named_buffers():
        if not torch.allclose(state[name][0].to(buffer.dtype), buffer, **close):
            return f"the stacked program's {name} differs from the module's own"
    return None


def compiled_program(
    base: nn.Module,
    names: Sequence[str],
    sample_shape: Sequence[int],
    inputs: Tensor,
    targets: Tensor,
    loss: Loss,
) -> tuple[StackedProgram | None, str]:
    """``base``'s checked program and the engine's reason, or None and why there is none."""
    program, why_not = StackedProgram.compile(base, sample_shape)
    if program is None:
        return None, why_not
    problem = check_program(program, base, names, inputs, targets, loss)
    if problem is not None:
        return None, problem
    layers = ", ".join(program.layer_names)
    return program, (
        f"its layers ({layers}) ran as one stacked program without vmap, each fold's data read "
        "once for every trial, checked against the module's own outputs and gradients"
    )


def stacked_path(
    stack: ModuleStack,
    flat: Tensor,
    state: Mapping[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss: Loss,
    *,
    use_program: bool = True,
) -> tuple[StackedProgram | None, Probe]:
    """How a stack of ``stack``'s module runs: its checked program, or else vmap if the probe
    passes (program None). The probe says whether it can be stacked at all, and why, in words;
    ``inputs``/``targets`` are a couple of real samples."""
    if use_program:
        program, reason = compiled_program(
            stack.base, stack.names, tuple(inputs.shape[1:]), inputs, targets, loss
        )
        if program is not None:
            return program, Probe(True, reason)
    return None, probe_vmap(stack, flat, state, inputs, targets, loss)
