"""Copies of any ``nn.Module`` stacked into one flat ``(n_models, n_params)`` tensor (torch.func).

PyTorch's model-ensembling recipe: ``stack_module_state`` stacks the copies' parameters and
buffers, and ``vmap(functional_call(base, (params, buffers), (x,)))`` runs them all at once, each on
its own batch. Here the trainable parameters are then laid out row-wise in one flat tensor, so
that :class:`~trainers.stacked_optim.StackedOptimizer` updates them as it updates the MLP's;
each parameter is a view into that tensor. Buffers (BatchNorm's running statistics) and frozen
parameters stay stacked per model beside it, as the *state*, and vmap updates them in place.

The gradient is plain autograd through the vmapped forward: every row's loss depends only on its
own parameters, so the gradient of the summed loss is each row's own gradient, in one backward.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from trainers.losses import Loss
from trainers.module_engine._fast_layers import stacked_copy

# factory(input_shape=<one sample's shape>, n_outputs=<int>, **model_kwargs) -> nn.Module
ModelFactory = Callable[..., nn.Module]


def fold_seed(seed: int, fold: int) -> int:
    """The seed fold ``fold``'s model is built under, whatever the stack it trains in."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG ``torch.random.fork_rng`` must save for work on ``device``."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def build_module(
    factory: ModelFactory,
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    seed: int,
    fold: int,
    model_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Fold ``fold``'s initial model: the factory called on the CPU under :func:`fold_seed`.

    The global RNG is restored afterwards, so building models never shifts anyone's draws.

    Example:
        >>> build_module(lambda input_shape, n_outputs: nn.Linear(input_shape[0], n_outputs),
        ...              (4,), 1, seed=0, fold=2)
        Linear(in_features=4, out_features=1, bias=True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(fold_seed(seed, fold))
        module = factory(
            input_shape=tuple(input_shape), n_outputs=n_outputs, **(model_kwargs or {})
        )
    if not isinstance(module, nn.Module):
        raise TypeError(f"the model factory must return an nn.Module, but got {type(module)!r}.")
    return module


class ModuleStack:
    """The layout of a module's trainable parameters in a flat row, and the vmapped passes.

    Args:
        template: one copy of the module; its structure (not its values) defines the layout.
        device: where the stacked passes run.

    Example:
        >>> stack = ModuleStack(nn.Linear(4, 2), torch.device("cpu"))
        >>> flat, state = stack.stack([nn.Linear(4, 2) for _ in range(3)])
        >>> stack.forward(flat, state, torch.zeros(3, 5, 4), train=False).shape
        torch.Size([3, 5, 2])
    """

    def __init__(self, template: nn.Module, device: torch.device) -> None:
        self.device = device
        self.base = copy.deepcopy(template).to(device)
        trainable = [(n, p) for n, p in self.base.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in trainable]
        self.shapes = [tuple(p.shape) for _, p in trainable]
        self.sizes = [p.numel() for _, p in trainable]
        self.n_params = sum(self.sizes)
        dtypes = sorted({str(p.dtype) for _, p in trainable})
        # One flat tensor holds every parameter, so they must share a dtype to be stacked.
        self.dtype_problem = None if len(dtypes) <= 1 else f"parameters of mixed dtypes {dtypes}"
        self.dtype = trainable[0][1].dtype if trainable else torch.float32
        self.has_batch_norm = any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.base.modules()
        )
        # The copy the vmapped passes run: Conv2d/MaxPool2d swapped for channels-last stand-ins.
        self.fast_base, self.swapped = stacked_copy(self.base)
        if [n for n, _ in self.fast_base.named_parameters()] != [
            n for n, _ in self.base.named_parameters()
        ]:
            self.fast_base, self.swapped = self.base, []
        self._training: bool | None = None

    def stack(self, modules: Sequence[nn.Module]) -> tuple[Tensor, dict[str, Tensor]]:
        """``(flat, state)`` of ``modules``: the flat ``(n_models, n_params)`` trainable
        parameters, and the buffers and frozen parameters stacked ``(n_models, ...)``."""
        params, buffers = stack_module_state(list(modules))
        n_models = len(modules)
        flat = torch.empty(n_models, self.n_params, dtype=self.dtype, device=self.device)
        for name, column in zip(self.names, self.columns(flat)):
            column.copy_(params[name].detach().reshape(n_models, -1))
        state = {name: value.detach().to(self.device) for name, value in buffers.items()}
        state.update(
            {
                name: value.detach().to(self.device)
                for name, value in params.items()
                if name not in self.names
            }
        )
        return flat, state

    def columns(self, flat: Tensor) -> list[Tensor]:
        """Each trainable parameter's ``(n_models, numel)`` block of ``flat`` (views)."""
        return list(flat.split(self.sizes, dim=1))

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """Each trainable parameter of every row, ``(n_models, *shape)``, as views into ``flat``."""
        n_models = flat.shape[0]
        return {
            name: column.view(n_models, *shape)
            for name, shape, column in zip(self.names, self.shapes, self.columns(flat))
        }

    def flat_row(self, module: nn.Module) -> Tensor:
        """One module's trainable parameters as a row of the flat layout."""
        params = dict(module.named_parameters())
        return torch.cat([params[name].detach().reshape(-1) for name in self.names])

    def to_module(self, flat_row: Tensor, state_row: Mapping[str, Tensor]) -> nn.Module:
        """A plain copy of the module holding one row's parameters and state."""
        module = copy.deepcopy(self.base)
        values = {
            name: value.view(shape)
            for name, shape, value in zip(self.names, self.shapes, flat_row.split(self.sizes))
        }
        # strict=False: a tied parameter appears under each of its names in a state dict.
        module.load_state_dict({**values, **state_row}, strict=False)
        return module

    def forward(
        self, flat: Tensor, state: Mapping[str, Tensor], inputs: Tensor, *, train: bool
    ) -> Tensor:
        """Outputs ``(n_models, batch, ...)`` of inputs ``(n_models, batch, *sample_shape)``.

        In training mode, randomness (dropout) differs per model, and buffers in ``state``
        (running statistics) are updated in place, each model's own.
        """
        return self._vmapped(self.views(flat), state, inputs, train=train)

    def _vmapped(
        self, params: dict[str, Tensor], state: Mapping[str, Tensor], inputs: Tensor, *, train: bool
    ) -> Tensor:
        if self._training is not train:
            self.fast_base.train(train)
            self._training = train

        def one_model(p: dict[str, Tensor], s: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(self.fast_base, (p, s), (x,))

        return torch.vmap(one_model, randomness="different")(params, dict(state), inputs)

    def loss_and_grad(
        self, flat: Tensor, state: Mapping[str, Tensor], inputs: Tensor, targets: Tensor, loss: Loss
    ) -> tuple[Tensor, Tensor]:
        """Each row's mean loss over its batch, ``(n_models,)``, and its gradient, ``flat``'s shape.

        The leaves are detached views of ``flat`` (no copy); their gradients are concatenated
        into the flat layout once.
        """
        n_models = flat.shape[0]
        leaves = {name: view.detach().requires_grad_() for name, view in self.views(flat).items()}
        with torch.enable_grad():
            outputs = self._vmapped(leaves, state, inputs, train=True)
            row_loss = loss.stacked(outputs, targets).mean(dim=1)
            grads = torch.autograd.grad(row_loss.sum(), list(leaves.values()), allow_unused=True)
        columns = [
            torch.zeros(n_models, size, dtype=flat.dtype, device=flat.device)
            if grad is None
            else grad.reshape(n_models, -1)
            for grad, size in zip(grads, self.sizes)
        ]
        return row_loss.detach(), torch.cat(columns, dim=1)


class Probe(NamedTuple):
    """Whether a module trains stacked, and why (or why not) in words."""

    stackable: bool
    reason: str


def probe_vmap(
    stack: ModuleStack,
    flat: Tensor,
    state: Mapping[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss: Loss,
) -> Probe:
    """Try the module under vmap before training with it.

    Runs one model plainly first (an error there is the user's own and is raised), then two
    models through vmap, forward and backward, on copies, and checks that the vmapped outputs
    match the plain ones in evaluation mode. ``inputs``/``targets`` hold a couple of real samples.
    """
    if stack.dtype_problem is not None:
        return Probe(False, f"one flat tensor cannot hold {stack.dtype_problem}")
    rows = flat[:1].repeat(2, 1)
    rows_state = {k: v[:1].repeat(2, *[1] * (v.dim() - 1)) for k, v in state.items()}
    with torch.random.fork_rng(devices=rng_devices(flat.device)):
        plain = stack.to_module(rows[0], {k: v[0] for k, v in rows_state.items()})
        plain.eval()
        with torch.no_grad():
            expected = plain(inputs)
            loss.stacked(expected.unsqueeze(0), targets.unsqueeze(0))
        batch = inputs.unsqueeze(0).repeat(2, *[1] * inputs.dim())
        batch_targets = targets.unsqueeze(0).repeat(2, *[1] * targets.dim())
        with _vmap_loop_warnings() as caught:
            try:
                train_state = {k: v.clone() for k, v in rows_state.items()}
                stack.loss_and_grad(rows.clone(), train_state, batch, batch_targets, loss)
                with torch.no_grad():
                    outputs = stack.forward(rows, rows_state, batch, train=False)
            except Exception as error:  # vmap refuses with many exception types; any one means no
                lines = str(error).strip().splitlines() or [""]
                return Probe(False, f"torch.func.vmap failed: {type(error).__name__}: {lines[0]}")
    if outputs.shape[1:] != expected.shape or not torch.allclose(
        outputs[0], expected, rtol=1e-4, atol=1e-5
    ):
        return Probe(False, "torch.func.vmap's outputs differ from the module's own (eval mode)")
    reason = "torch.func.vmap ran the stacked forward and backward"
    if stack.swapped:
        reason += f"; {' and '.join(stack.swapped)} run channels-last with the models as channels"
    if stack.has_batch_norm:
        reason += "; BatchNorm running statistics are stacked, one set per model"
    loops = sorted({m.split("batching rule for ")[-1].split(".")[0] for m in caught})
    if loops:
        reason += f"; vmap loops over the models for {', '.join(loops)} (no batching rule)"
    return Probe(True, reason)


@contextlib.contextmanager
def _vmap_loop_warnings() -> Iterator[list[str]]:
    """The ops vmap runs one model at a time (it has no batching rule for them), as messages.

    vmap only says so when its fallback warning is on, which is a private switch."""
    switch = getattr(torch._C._functorch, "_set_vmap_fallback_warning_enabled", None)
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if switch is not None:
            switch(True)
        try:
            yield messages
        finally:
            if switch is not None:
                switch(False)
            messages += [str(w.message) for w in caught if "performance drop" in str(w.message)]
