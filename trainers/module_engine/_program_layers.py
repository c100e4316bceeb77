"""The layers a :class:`~trainers.module_engine._program.StackedProgram` runs: each one's stacked
forward and its hand-written backward, on every model of the stack at once, without vmap.

Models are rows ``m = position * n_folds + fold``. Two kinds of activation flow between layers:

- *shared*: ``(n_folds, batch, *features)``, the same for every position of a fold. The data is
  shared until the first layer with parameters; that layer reads it once per fold.
- *per model*: ``(n_models, batch, *features)``, any strides.

A layer's ``forward(x, params, train)`` returns its output and what its backward needs;
``backward(grad, saved, params, grads)`` adds its parameters' gradients, ``(n_models, *shape)``,
to ``grads`` and returns the input's gradient (None for a layer reading shared data).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from trainers.module_engine._fast_layers import _pair, _pool_backward

_CL = torch.channels_last


def fold_weights(weight: Tensor, n_folds: int) -> Tensor:
    """Per-model ``(n_models, out, in)`` weights as one ``(n_folds, in, positions * out)``
    matrix per fold: the right operand of a batched matmul over the folds."""
    n_models, n_out, n_in = weight.shape
    positions = n_models // n_folds
    return (
        weight.view(positions, n_folds, n_out, n_in)
        .permute(1, 3, 0, 2)
        .reshape(n_folds, n_in, positions * n_out)
    )


def fold_bias(bias: Tensor, n_folds: int) -> Tensor:
    """Per-model ``(n_models, out)`` biases as ``(n_folds, 1, positions * out)``."""
    n_models, n_out = bias.shape
    positions = n_models // n_folds
    return bias.view(positions, n_folds, n_out).transpose(0, 1).reshape(n_folds, 1, -1)


def per_model(y: Tensor, n_out: int) -> Tensor:
    """A fold-batched ``(n_folds, *rows, positions * n_out)`` result as per-model
    ``(n_models, *rows, n_out)``, contiguous (one copy)."""
    n_folds, rows = y.shape[0], y.shape[1:-1]
    positions = y.shape[-1] // n_out
    y = y.view(n_folds, *rows, positions, n_out)
    y = y.movedim(-2, 0)  # (positions, n_folds, *rows, n_out)
    return y.reshape(positions * n_folds, *rows, n_out)


def per_fold(grad: Tensor, n_folds: int) -> Tensor:
    """The inverse of :func:`per_model`: ``(n_models, *rows, n_out)`` as
    ``(n_folds, *rows, positions * n_out)``, contiguous."""
    n_models, rows, n_out = grad.shape[0], grad.shape[1:-1], grad.shape[-1]
    positions = n_models // n_folds
    grad = grad.view(positions, n_folds, *rows, n_out).movedim(0, -2)
    return grad.reshape(n_folds, *rows, positions * n_out)


def unfold_weights_grad(grad: Tensor, n_folds: int, n_out: int) -> Tensor:
    """``(n_folds, in, positions * out)`` weight gradients as per-model ``(n_models, out, in)``."""
    n_in = grad.shape[1]
    positions = grad.shape[2] // n_out
    return grad.view(n_folds, n_in, positions, n_out).permute(2, 0, 3, 1).reshape(-1, n_out, n_in)


class FoldLinear:
    """``nn.Linear`` as the first layer with parameters: one batched matmul per fold over the
    fold's shared inputs, the positions' weights side by side."""

    def __init__(self, prefix: str, module: nn.Linear) -> None:
        self.weight, self.bias = (
            prefix + "weight",
            prefix + "bias" if module.bias is not None else None,
        )
        self.n_out = module.out_features

    def forward(self, x: Tensor, params: dict[str, Tensor], train: bool) -> tuple[Tensor, Any]:
        n_folds = x.shape[0]
        rows = x.reshape(n_folds, -1, x.shape[-1])
        weights = fold_weights(params[self.weight], n_folds)
        if self.bias is None:
            y = torch.bmm(rows, weights)
        else:
            y = torch.baddbmm(fold_bias(params[self.bias], n_folds), rows, weights)
        return per_model(y.view(*x.shape[:-1], -1), self.n_out), rows

    def backward(self, grad: Tensor, rows: Tensor, params: dict, grads: dict) -> None:
        n_folds = rows.shape[0]
        g = per_fold(grad, n_folds).view(n_folds, rows.shape[1], -1)
        grads[self.weight] = unfold_weights_grad(
            torch.bmm(rows.transpose(1, 2), g), n_folds, self.n_out
        )
        if self.bias is not None:
            grads[self.bias] = grad.reshape(grad.shape[0], -1, self.n_out).sum(dim=1)
        return None


class Linear:
    """``nn.Linear`` per model: ``baddbmm`` forward, two ``bmm`` backward."""

    def __init__(self, prefix: str, module: nn.Linear) -> None:
        self.weight, self.bias = (
            prefix + "weight",
            prefix + "bias" if module.bias is not None else None,
        )

    def forward(self, x: Tensor, params: dict[str, Tensor], train: bool) -> tuple[Tensor, Any]:
        rows = x.reshape(x.shape[0], -1, x.shape[-1])
        weight = params[self.weight].transpose(1, 2)
        if self.bias is None:
            y = torch.bmm(rows, weight)
        else:
            y = torch.baddbmm(params[self.bias].unsqueeze(1), rows, weight)
        return y.view(*x.shape[:-1], -1), (rows, x.shape)

    def backward(self, grad: Tensor, saved: Any, params: dict, grads: dict) -> Tensor | None:
        rows, shape = saved
        g = grad.reshape(grad.shape[0], -1, grad.shape[-1])
        grads[self.weight] = torch.bmm(g.transpose(1, 2), rows)
        if self.bias is not None:
            grads[self.bias] = g.sum(dim=1)
        return torch.bmm(g, params[self.weight]).view(shape)


class Elementwise:
    """A parameter-free elementwise activation, with its ATen backward."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def forward(self, x: Tensor, params: dict, train: bool) -> tuple[Tensor, Any]:
        module = self.module
        if isinstance(module, nn.ReLU):
            y = x.relu()
        elif isinstance(module, nn.Tanh):
            y = x.tanh()
        elif isinstance(module, nn.Sigmoid):
            y = x.sigmoid()
        else:
            return functional.gelu(x, approximate=module.approximate), x
        return y, y

    def backward(self, grad: Tensor, saved: Tensor, params: dict, grads: dict) -> Tensor:
        module = self.module
        if isinstance(module, nn.ReLU):
            return torch.ops.aten.threshold_backward(grad, saved, 0.0)
        if isinstance(module, nn.Tanh):
            return torch.ops.aten.tanh_backward(grad, saved)
        if isinstance(module, nn.Sigmoid):
            return torch.ops.aten.sigmoid_backward(grad, saved)
        return torch.ops.aten.gelu_backward(grad, saved, approximate=module.approximate)


class Flatten:
    """``nn.Flatten()``: each sample's features into one dimension."""

    def forward(self, x: Tensor, params: dict, train: bool) -> tuple[Tensor, Any]:
        return x.reshape(x.shape[0], x.shape[1], -1), x.shape

    def backward(self, grad: Tensor, shape: torch.Size, params: dict, grads: dict) -> Tensor:
        return grad.reshape(shape)


class FoldConvBlock:
    """``nn.Conv2d`` as the first layer with parameters, optionally followed by ``nn.ReLU`` and
    ``nn.MaxPool2d``: one batched matmul per fold over the fold's shared patches (im2col), the
    positions' filters side by side, so the result is each fold's batch in channels-last memory
    with every position's channels: ``max_pool2d`` then runs on it as it is.

    The bias and the ReLU are applied after pooling: adding a per-channel constant and a
    monotonic ReLU both commute with a window's maximum, the window's first maximal element is
    the same either way, and ReLU's mask read on the pooled output is the gradient's mask.
    """

    def __init__(
        self,
        prefix: str,
        conv: nn.Conv2d,
        relu: bool,
        pool: nn.MaxPool2d | None,
        sample_shape: tuple[int, ...],
    ) -> None:
        self.weight = prefix + "weight"
        self.bias = prefix + "bias" if conv.bias is not None else None
        self.n_out, self.relu = conv.out_channels, relu
        self.kernel, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        _, height, width = sample_shape
        self.conv_hw = tuple(
            (size + 2 * pad - dil * (k - 1) - 1) // step + 1
            for size, pad, dil, k, step in zip(
                (height, width), self.padding, self.dilation, self.kernel, self.stride
            )
        )
        self.pool = None
        if pool is not None:
            self.pool = (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)

    def patches(self, x: Tensor) -> Tensor:
        """``(..., out_h * out_w, in * kh * kw)`` patches of images ``(..., in, h, w)``, in the
        order ``nn.Conv2d``'s weight flattens to."""
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        ph, pw = self.padding
        x = functional.pad(x, (pw, pw, ph, ph))
        sn, sc, sh, sw = x.stride()
        windows = x.as_strided(
            (x.shape[0], *self.conv_hw, x.shape[1], *self.kernel),
            (
                sn,
                sh * self.stride[0],
                sw * self.stride[1],
                sc,
                sh * self.dilation[0],
                sw * self.dilation[1],
            ),
        )
        return windows.reshape(*lead, self.conv_hw[0] * self.conv_hw[1], -1)

    def forward(self, cols: Tensor, params: dict[str, Tensor], train: bool) -> tuple[Tensor, Any]:
        """``cols``: each fold's patches ``(n_folds, batch, out_h * out_w, k)``."""
        n_folds, batch, _, k = cols.shape
        n_models = params[self.weight].shape[0]
        weights = fold_weights(params[self.weight].reshape(n_models, self.n_out, k), n_folds)
        y = torch.bmm(cols.view(n_folds, -1, k), weights)  # (n_folds, rows, models' channels)
        channels = y.shape[-1]
        images = y.view(n_folds * batch, *self.conv_hw, channels).permute(0, 3, 1, 2)  # NHWC
        indices = None
        if self.pool is None:
            out = images
        elif train:
            out, indices = functional.max_pool2d_with_indices(images, *self.pool)
        else:
            out = functional.max_pool2d(images, *self.pool)
        out_hw = out.shape[2:]
        out = out.view(n_folds, batch, channels, *out_hw)
        if self.bias is not None:
            bias = fold_bias(params[self.bias], n_folds).view(n_folds, 1, channels, 1, 1)
            out = out + bias
        if self.relu:
            out = out.relu_()
        # (n_folds, batch, models' channels, h, w) -> (n_models, batch, out, h, w): one copy
        positions = channels // self.n_out
        result = out.view(n_folds, batch, positions, self.n_out, *out_hw).transpose(0, 2)
        result = result.transpose(1, 2).reshape(n_models, batch, self.n_out, *out_hw)
        return result, (cols, images, indices, out)

    def backward(self, grad: Tensor, saved: Any, params: dict, grads: dict) -> None:
        cols, images, indices, out = saved
        n_folds, batch, _, k = cols.shape
        n_models, channels = grad.shape[0], images.shape[1]
        positions = n_models // n_folds
        out_hw = grad.shape[3:]
        # (n_models, batch, out, h, w) -> channels-last (n_folds * batch, models' channels, h, w)
        g = grad.view(positions, n_folds, batch, self.n_out, *out_hw).permute(1, 2, 4, 5, 0, 3)
        g = g.reshape(n_folds * batch, *out_hw, channels).permute(0, 3, 1, 2)
        if self.relu:
            g = torch.ops.aten.threshold_backward(
                g, out.view(n_folds * batch, channels, *out_hw), 0.0
            )
        if self.pool is not None:
            g = _pool_backward(g, images, indices, self.pool)
        # channels-last (n_folds * batch, channels, h, w) is (n_folds, rows, channels) memory
        rows = g.permute(0, 2, 3, 1).reshape(n_folds, -1, channels)
        weight_grad = torch.bmm(cols.view(n_folds, -1, k).transpose(1, 2), rows)
        grads[self.weight] = unfold_weights_grad(weight_grad, n_folds, self.n_out).view(
            n_models, *params[self.weight].shape[1:]
        )
        if self.bias is not None:
            bias_grad = rows.sum(dim=1).view(n_folds, positions, self.n_out)
            grads[self.bias] = bias_grad.transpose(0, 1).reshape(n_models, self.n_out)
        return None


def _models_as_channels(x: Tensor) -> Tensor:
    """Per-model images ``(n_models, batch, c, h, w)`` (any strides) as one channels-last
    ``(batch, n_models * c, h, w)`` tensor; no copy when ``x`` is already laid out that way."""
    n_models, batch, channels, height, width = x.shape
    nhwc = x.permute(1, 3, 4, 0, 2).contiguous()
    return nhwc.view(batch, height, width, n_models * channels).permute(0, 3, 1, 2)


def _per_model_images(y: Tensor, n_models: int) -> Tensor:
    """The inverse view: channels-last ``(batch, n_models * c, h, w)`` as per-model
    ``(n_models, batch, c, h, w)``."""
    y = y.contiguous(memory_format=_CL)
    batch, channels, height, width = y.shape
    nhwc = y.permute(0, 2, 3, 1).view(batch, height, width, n_models, channels // n_models)
    return nhwc.permute(3, 0, 4, 1, 2)


class Conv2d:
    """``nn.Conv2d`` after the first layer with parameters: one grouped channels-last convolution
    over all the models' channels (a group per model and per the layer's own groups), and
    ``convolution_backward`` for the input's and the weights' gradients."""

    def __init__(self, prefix: str, conv: nn.Conv2d) -> None:
        self.weight = prefix + "weight"
        self.bias = prefix + "bias" if conv.bias is not None else None
        self.args = (list(conv.stride), list(conv.padding), list(conv.dilation))
        self.groups = conv.groups

    def forward(self, x: Tensor, params: dict[str, Tensor], train: bool) -> tuple[Tensor, Any]:
        n_models = x.shape[0]
        images = _models_as_channels(x)
        weight = params[self.weight].reshape(-1, *params[self.weight].shape[2:])
        bias = None if self.bias is None else params[self.bias].reshape(-1)
        stride, padding, dilation = self.args
        y = functional.conv2d(
            images, weight, bias, stride, padding, dilation, n_models * self.groups
        )
        return _per_model_images(y, n_models), (images, weight)

    def backward(self, grad: Tensor, saved: Any, params: dict, grads: dict) -> Tensor:
        images, weight = saved
        n_models = grad.shape[0]
        stride, padding, dilation = self.args
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            _models_as_channels(grad),
            images,
            weight,
            [weight.shape[0]] if self.bias is not None else None,
            stride,
            padding,
            dilation,
            False,
            [0, 0],
            n_models * self.groups,
            [True, True, self.bias is not None],
        )
        grads[self.weight] = grad_w.view(params[self.weight].shape)
        if self.bias is not None:
            grads[self.bias] = grad_b.view(n_models, -1)
        return _per_model_images(grad_x, n_models)


class MaxPool2d:
    """``nn.MaxPool2d`` on per-model images (or, before any layer with parameters, on each
    fold's): channels-last ``max_pool2d`` over all of them at once."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        self.args = (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)

    def forward(self, x: Tensor, params: dict, train: bool) -> tuple[Tensor, Any]:
        n_models = x.shape[0]
        images = _models_as_channels(x)
        if not train:
            return _per_model_images(functional.max_pool2d(images, *self.args), n_models), None
        out, indices = functional.max_pool2d_with_indices(images, *self.args)
        return _per_model_images(out, n_models), (images, indices)

    def backward(self, grad: Tensor, saved: Any, params: dict, grads: dict) -> Tensor:
        images, indices = saved
        grad_x = _pool_backward(_models_as_channels(grad), images, indices, self.args)
        return _per_model_images(grad_x, grad.shape[0])


class AvgPool2d:
    """``nn.AvgPool2d`` or ``nn.AdaptiveAvgPool2d`` on per-model images: one channels-last
    pooling over all the models' channels, and its ATen backward."""

    def __init__(self, pool: nn.Module) -> None:
        self.pool = pool

    def _apply(self, images: Tensor) -> Tensor:
        pool = self.pool
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            return functional.adaptive_avg_pool2d(images, pool.output_size)
        return functional.avg_pool2d(
            images,
            pool.kernel_size,
            pool.stride,
            pool.padding,
            pool.ceil_mode,
            pool.count_include_pad,
            pool.divisor_override,
        )

    def forward(self, x: Tensor, params: dict, train: bool) -> tuple[Tensor, Any]:
        images = _models_as_channels(x)
        return _per_model_images(self._apply(images), x.shape[0]), images

    def backward(self, grad: Tensor, images: Tensor, params: dict, grads: dict) -> Tensor:
        pool, g = self.pool, _models_as_channels(grad)
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            grad_x = torch.ops.aten._adaptive_avg_pool2d_backward(g, images)
        else:
            kernel = _pair(pool.kernel_size)
            grad_x = torch.ops.aten.avg_pool2d_backward(
                g,
                images,
                kernel,
                _pair(pool.stride) if pool.stride else kernel,
                _pair(pool.padding),
                pool.ceil_mode,
                pool.count_include_pad,
                pool.divisor_override,
            )
        return _per_model_images(grad_x, grad.shape[0])


class LayerNorm:
    """``nn.LayerNorm`` per model: ``native_layer_norm`` without the affine part, then each
    model's own scale and shift; the backward through ``native_layer_norm_backward``."""

    def __init__(self, prefix: str, norm: nn.LayerNorm) -> None:
        self.shape, self.eps = list(norm.normalized_shape), norm.eps
        affine = norm.elementwise_affine
        self.weight = prefix + "weight" if affine else None
        self.bias = prefix + "bias" if affine and norm.bias is not None else None

    def _broadcast(self, value: Tensor, x: Tensor) -> Tensor:
        """``(n_models, *shape)`` viewed to broadcast against ``x`` ``(n_models, ..., *shape)``."""
        middle = x.dim() - 1 - len(self.shape)
        return value.view(value.shape[0], *[1] * middle, *self.shape)

    def forward(self, x: Tensor, params: dict[str, Tensor], train: bool) -> tuple[Tensor, Any]:
        normed, mean, rstd = torch.native_layer_norm(x, self.shape, None, None, self.eps)
        y = normed
        if self.weight is not None:
            y = y * self._broadcast(params[self.weight], x)
        if self.bias is not None:
            y = y + self._broadcast(params[self.bias], x)
        return y, (x, normed, mean, rstd)

    def backward(self, grad: Tensor, saved: Any, params: dict, grads: dict) -> Tensor:
        x, normed, mean, rstd = saved
        batch_dims = tuple(range(1, x.dim() - len(self.shape)))
        grad_normed = grad
        if self.weight is not None:
            grads[self.weight] = (grad * normed).sum(dim=batch_dims)
            grad_normed = grad * self._broadcast(params[self.weight], x)
        if self.bias is not None:
            grads[self.bias] = grad.sum(dim=batch_dims)
        grad_x, _, _ = torch.ops.aten.native_layer_norm_backward(
            grad_normed, x, self.shape, mean, rstd, None, None, [True, False, False]
        )
        return grad_x


class Dropout:
    """``nn.Dropout`` per model, drawn as ``torch.nn.functional.dropout`` draws on the CPU (one
    ``bernoulli_`` over the whole, row-major): each row gets its own masks, and a stack of one
    draws the masks of the module alone."""

    def __init__(self, p: float) -> None:
        self.p = p

    def forward(self, x: Tensor, params: dict, train: bool) -> tuple[Tensor, Any]:
        if not train:
            return x, None
        if self.p == 1:
            noise = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
        else:
            noise = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
            noise.div_(1 - self.p)
        return x * noise, noise

    def backward(self, grad: Tensor, noise: Tensor | None, params: dict, grads: dict) -> Tensor:
        return grad if noise is None else grad * noise


class BatchNorm:
    """``nn.BatchNorm1d``/``nn.BatchNorm2d`` per model: ``native_batch_norm`` over all the
    models' channels side by side, so each model normalises by its own batch statistics and
    updates its own running statistics (rows of the stack's state, in place)."""

    def __init__(self, prefix: str, norm: nn.modules.batchnorm._BatchNorm) -> None:
        self.weight = prefix + "weight" if norm.affine else None
        self.bias = prefix + "bias" if norm.affine else None
        tracked = norm.track_running_stats
        self.mean = prefix + "running_mean" if tracked else None
        self.var = prefix + "running_var" if tracked else None
        self.count = prefix + "num_batches_tracked" if tracked else None
        self.momentum, self.eps = norm.momentum, norm.eps

    def buffer_names(self) -> list[str]:
        return [name for name in (self.mean, self.var, self.count) if name is not None]

    @staticmethod
    def _merged(x: Tensor) -> Tensor:
        """Per-model ``(n_models, batch, c, ...)`` as ``(batch, n_models * c, ...)``."""
        if x.dim() == 5:
            return _models_as_channels(x)
        return x.movedim(0, 1).reshape(x.shape[1], x.shape[0] * x.shape[2], *x.shape[3:])

    @staticmethod
    def _split(y: Tensor, n_models: int) -> Tensor:
        if y.dim() == 4:
            return _per_model_images(y, n_models)
        return y.view(y.shape[0], n_models, -1, *y.shape[2:]).movedim(1, 0)

    @staticmethod
    def _flat(params: dict[str, Tensor], name: str | None, *, in_place: bool = False) -> Any:
        """``(n_models, c)`` as ``(n_models * c,)``: a copy of a weight (a strided view of the
        flat parameters), a view of a running statistic (updated in place)."""
        if name is None:
            return None
        return params[name].view(-1) if in_place else params[name].reshape(-1)

    def forward(self, x: Tensor, params: dict[str, Tensor], train: bool) -> tuple[Tensor, Any]:
        merged = self._merged(x)
        weight, bias = self._flat(params, self.weight), self._flat(params, self.bias)
        mean = self._flat(params, self.mean, in_place=True)
        var = self._flat(params, self.var, in_place=True)
        batch_stats = train or mean is None
        if train and self.count is not None:
            params[self.count].add_(1)
        out, save_mean, save_invstd = torch.native_batch_norm(
            merged, weight, bias, mean, var, batch_stats, self.momentum, self.eps
        )
        saved = (merged, weight, mean, var, save_mean, save_invstd, batch_stats)
        return self._split(out, x.shape[0]), saved

    def backward(self, grad: Tensor, saved: Any, params: dict, grads: dict) -> Tensor:
        merged, weight, mean, var, save_mean, save_invstd, batch_stats = saved
        n_models = grad.shape[0]
        grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            self._merged(grad),
            merged,
            weight,
            mean,
            var,
            save_mean,
            save_invstd,
            batch_stats,
            self.eps,
            [True, weight is not None, weight is not None],
        )
        if self.weight is not None:
            grads[self.weight] = grad_w.view(n_models, -1)
            grads[self.bias] = grad_b.view(n_models, -1)
        return self._split(grad_x, n_models)
