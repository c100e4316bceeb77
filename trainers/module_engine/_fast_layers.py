"""Faster stand-ins for ``nn.Conv2d`` and ``nn.MaxPool2d`` inside the vmapped stack.

What: :func:`stacked_copy` deep-copies a module and swaps each plain ``nn.Conv2d`` (zero
padding) and ``nn.MaxPool2d`` (no ``return_indices``) for a module that computes the same op
with the same arguments, through an ``autograd.Function`` whose ``vmap`` rule lays the models
out as channels of one channels-last (NHWC) tensor.

Why: under vmap, torch runs a stacked convolution as one grouped convolution on an NCHW tensor
and max-pooling on ``(models * batch, C, H, W)`` NCHW, whose CPU kernel is 8-10x slower than the
channels-last one at small spatial sizes. With the models merged into the channel dimension in
channels-last memory, the convolution (bias fused), the ReLU between them, the pooling and
their backward passes all read and write dense NHWC memory, with no relayout in between.

Both stand-ins call the same native ops with the module's own arguments, so outputs are those of
the module (max-pooling routes each window's gradient to its first maximal element, as
``nn.MaxPool2d`` does: it *is* ``max_pool2d``). Outside vmap they behave as the originals.
The user's module is never changed: only the copy the stack runs holds the stand-ins.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

_CL = torch.channels_last


def stacked_copy(module: nn.Module) -> tuple[nn.Module, list[str]]:
    """A deep copy of ``module`` with its eligible layers swapped for the stand-ins, and the
    kinds of layer swapped (``"Conv2d"``, ``"MaxPool2d"``), for the engine's reason."""
    copied = copy.deepcopy(module)
    swapped: list[str] = []
    for parent in list(copied.modules()):
        if type(parent) is nn.Sequential:
            swapped += _fuse_conv_relu_pool(parent)
        for name, child in list(parent.named_children()):
            stand_in = _stand_in(child)
            if stand_in is not None:
                setattr(parent, name, stand_in)
                swapped.append(type(child).__name__)
    return copied, sorted(set(swapped))


def _fuse_conv_relu_pool(sequence: nn.Sequential) -> list[str]:
    """Each run ``Conv2d, ReLU, MaxPool2d`` of ``sequence`` becomes one
    :class:`StackedConvReluPool` followed by two ``nn.Identity`` (names, and so parameter
    names, unchanged). Returns ``["Conv2d+ReLU+MaxPool2d"]`` if any was fused."""
    children = list(sequence.named_children())
    fused = []
    for (name, conv), (relu_name, relu), (pool_name, pool) in zip(
        children, children[1:], children[2:]
    ):
        if (
            type(conv) is nn.Conv2d
            and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)
            and type(relu) is nn.ReLU
            and type(pool) is nn.MaxPool2d
            and not pool.return_indices
        ):
            setattr(sequence, name, StackedConvReluPool(conv, pool))
            setattr(sequence, relu_name, nn.Identity())
            setattr(sequence, pool_name, nn.Identity())
            fused = ["Conv2d+ReLU+MaxPool2d"]
    return fused


def _stand_in(child: nn.Module) -> nn.Module | None:
    """The stand-in for ``child``, or None. Exact types only: a subclass may change forward."""
    if type(child) is nn.Conv2d and child.padding_mode == "zeros":
        return StackedConv2d(child)
    if type(child) is nn.MaxPool2d and not child.return_indices:
        return StackedMaxPool2d(child)
    return None


class StackedConv2d(nn.Module):
    """``nn.Conv2d`` (zero padding); under vmap one channels-last grouped convolution with the
    bias fused. Holds the original's parameters under the same names."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.args = (conv.stride, conv.padding, conv.dilation, conv.groups)

    def forward(self, x: Tensor) -> Tensor:
        return _Conv2d.apply(x, self.weight, self.bias, self.args)


class StackedMaxPool2d(nn.Module):
    """``nn.MaxPool2d`` (without ``return_indices``); under vmap, channels-last ``max_pool2d``
    over the models' channels side by side."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.args = (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return _MaxPool2d.apply(x, self.args)[0]


class StackedConvReluPool(nn.Module):
    """``MaxPool2d(ReLU(Conv2d(x)))`` as one op; under vmap, one channels-last grouped
    convolution, ReLU in place, and channels-last pooling, with a backward that never forms the
    ReLU's gradient at full size (see :class:`_ConvReluPool`)."""

    def __init__(self, conv: nn.Conv2d, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.args = (
            (conv.stride, conv.padding, conv.dilation, conv.groups),
            (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode),
        )

    def forward(self, x: Tensor) -> Tensor:
        return _ConvReluPool.apply(x, self.weight, self.bias, self.args)[0]


def _models_as_channels(x: Tensor, bdim: int | None, n_models: int) -> tuple[Tensor, bool]:
    """``(N, n_models * C, H, W)`` channels-last of a vmapped ``(N, C, H, W)`` or ``(C, H, W)``
    input with its model dimension at ``bdim``; and whether the input had no batch dimension."""
    unbatched = x.dim() - (bdim is not None) == 3
    if bdim is None:
        x = x.unsqueeze(0).expand(n_models, *x.shape)
        bdim = 0
    if unbatched:
        x = x.unsqueeze(1 if bdim == 0 else 0)
        bdim = 0 if bdim == 0 else bdim + 1
    x = x.movedim(bdim, 1)
    n, m, c = x.shape[:3]
    return x.reshape(n, m * c, *x.shape[3:]).contiguous(memory_format=_CL), unbatched


def _split_models(out: Tensor, n_models: int, unbatched: bool) -> tuple[Tensor, int]:
    """The vmap output of an ``(N, n_models * C, H, W)`` result: a view, models at dim 1."""
    n, mc = out.shape[:2]
    out = out.view(n, n_models, mc // n_models, *out.shape[2:])
    return (out[0], 0) if unbatched else (out, 1)


class _Conv2d(torch.autograd.Function):
    """``conv2d``; its vmap rule runs all models as one grouped channels-last convolution.

    Under vmap the work happens in the rule's own ``conv2d`` call, which autograd records."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None, args: tuple) -> Tensor:
        stride, padding, dilation, groups = args
        return functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, weight, bias, args = inputs
        ctx.save_for_backward(x, weight)
        ctx.args, ctx.has_bias = args, bias is not None

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.args
        with torch.enable_grad():
            x_ = x.detach().requires_grad_(ctx.needs_input_grad[0])
            w_ = weight.detach().requires_grad_()
            b_ = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
            b_.requires_grad_(ctx.has_bias)
            out = functional.conv2d(x_, w_, b_, stride, padding, dilation, groups)
            wanted = [t for t in (x_, w_, b_) if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad))
        return (
            next(grads) if x_.requires_grad else None,
            next(grads),
            next(grads) if ctx.has_bias else None,
            None,
        )

    @staticmethod
    def vmap(info: Any, in_dims: tuple, x: Tensor, weight: Tensor, bias, args: tuple):
        stride, padding, dilation, groups = args
        m = info.batch_size
        xs, unbatched = _models_as_channels(x, in_dims[0], m)
        weight, bias = _models_as_groups(weight, bias, in_dims[1:3], m)
        out = functional.conv2d(xs, weight, bias, stride, padding, dilation, m * groups)
        return _split_models(out, m, unbatched)


class _MaxPool2d(torch.autograd.Function):
    """``max_pool2d_with_indices``; its vmap rule pools all models' channels in one
    channels-last call.

    The backward keeps the gradient channels-last, as the input, so the native backward kernel
    writes dense NHWC memory."""

    @staticmethod
    def forward(x: Tensor, args: tuple) -> tuple[Tensor, Tensor]:
        kernel, stride, padding, dilation, ceil_mode = args
        return functional.max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, args = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(x, output[1])
        ctx.args = args

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _grad_indices: Tensor | None) -> tuple:
        x, indices = ctx.saved_tensors
        return _pool_backward(grad, x, indices, ctx.args), None

    @staticmethod
    def vmap(info: Any, in_dims: tuple, x: Tensor, args: tuple):
        m = info.batch_size
        xs, unbatched = _models_as_channels(x, in_dims[0], m)
        out, indices = _MaxPool2d.apply(xs, args)
        (out, dim), (indices, _) = (_split_models(t, m, unbatched) for t in (out, indices))
        return (out, indices), (dim, dim)


class _ConvReluPool(torch.autograd.Function):
    """``max_pool2d(relu(conv2d(x)))``, returned with the pooling indices and the ReLU output,
    with a hand-written backward.

    The backward masks the *pooled* gradient by ``pooled > 0`` instead of masking the
    convolution's full-size gradient by ``relu > 0``: max-pooling routes each window's gradient
    to its first maximal ReLU output, which is positive exactly when the window's output is, so
    both give the same gradient (zero where the window's maximum is 0 or NaN), and the backward
    skips a full pass over the largest tensor. The vmap rule merges the models into the
    channels of one channels-last call of this same op."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None, args: tuple) -> tuple:
        (stride, padding, dilation, groups), pool = args
        y = functional.conv2d(x, weight, bias, stride, padding, dilation, groups).relu_()
        out, indices = functional.max_pool2d_with_indices(y, *pool)
        return out, indices, y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, weight, bias, args = inputs
        out, indices, y = output
        ctx.mark_non_differentiable(indices, y)
        ctx.save_for_backward(x, weight, out, indices, y)
        ctx.args, ctx.has_bias = args, bias is not None

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _gi: Tensor | None, _gy: Tensor | None) -> tuple:
        x, weight, out, indices, y = ctx.saved_tensors
        (stride, padding, dilation, groups), pool = ctx.args
        grad = torch.ops.aten.threshold_backward(grad, out, 0.0)  # ReLU's mask, pooled
        grad_y = _pool_backward(grad, y, indices, pool)
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y,
            x,
            weight,
            [weight.shape[0]] if ctx.has_bias else None,
            _pair(stride),
            _pair(padding),
            _pair(dilation),
            False,
            [0, 0],
            groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias],
        )
        return grad_x, grad_w, grad_b, None

    @staticmethod
    def vmap(info: Any, in_dims: tuple, x: Tensor, weight: Tensor, bias, args: tuple):
        (stride, padding, dilation, groups), pool = args
        m = info.batch_size
        xs, unbatched = _models_as_channels(x, in_dims[0], m)
        weight, bias = _models_as_groups(weight, bias, in_dims[1:3], m)
        conv_args = (stride, padding, dilation, m * groups)
        outputs = _ConvReluPool.apply(xs, weight, bias, (conv_args, pool))
        split = [_split_models(t, m, unbatched) for t in outputs]
        return tuple(t for t, _ in split), tuple(d for _, d in split)


def _models_as_groups(
    weight: Tensor, bias: Tensor | None, in_dims: tuple, n_models: int
) -> tuple[Tensor, Tensor | None]:
    """The models' convolution weights ``(n_models * out, in / groups, kh, kw)`` and biases
    ``(n_models * out,)``: the groups of one grouped convolution over the models' channels."""
    weight = _at_front(weight, in_dims[0], n_models)
    weight = weight.reshape(n_models * weight.shape[1], *weight.shape[2:])
    if bias is not None:
        bias = _at_front(bias, in_dims[1], n_models).reshape(-1)
    return weight, bias


def _pool_backward(grad: Tensor, x: Tensor, indices: Tensor, pool: tuple) -> Tensor:
    """``max_pool2d``'s input gradient, kept channels-last when the input is (the native kernel
    then writes dense NHWC memory)."""
    kernel, stride, padding, dilation, ceil_mode = pool
    if x.dim() == 4 and x.is_contiguous(memory_format=_CL):
        grad = grad.contiguous(memory_format=_CL)
    return torch.ops.aten.max_pool2d_with_indices_backward(
        grad, x, _pair(kernel), _pair(stride), _pair(padding), _pair(dilation), ceil_mode, indices
    )


def _at_front(t: Tensor, bdim: int | None, n_models: int) -> Tensor:
    """``t`` with its model dimension first (expanded if it has none)."""
    return t.unsqueeze(0).expand(n_models, *t.shape) if bdim is None else t.movedim(bdim, 0)


def _pair(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value, value]
    return list(value)
