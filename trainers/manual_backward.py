"""Loss and gradient of a stacked MLP in one pass, with the backward pass written out by hand.

For ReLU and tanh MLPs (with or without dropout) the backward pass is a handful of batched
matmuls, with none of autograd's per-node bookkeeping: on small models, where every step is a few
tiny kernels, that bookkeeping is most of the cost. Other activations fall back to autograd. A
test checks both paths give the same loss and gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainers.stacked_linear import input_grad, linear_forward, weight_grad
from trainers.stacked_mlp import StackedMLP

MANUAL_ACTIVATIONS = ("relu", "tanh")


def loss_and_grad(
    model: StackedMLP,
    flat: Tensor,
    inputs: Tensor,
    targets: Tensor,
    weight_scale: Tensor,
    *,
    classification: bool,
    dropout_generator: torch.Generator | None = None,
    dropout_draws: list[Tensor] | None = None,
    compute_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-model mean loss over the masked batch, and its gradient with respect to ``flat``.

    Args:
        inputs: ``(n_models, batch, n_inputs)``.
        targets: ``(n_models, batch)``, float (regression) or class indices.
        weight_scale: ``(n_models, batch)``: 1 / (real samples in the model's batch) for real
            samples, 0 for padding, so the weighted sum is the mean loss over real samples.
        dropout_draws: the step's dropout draws (:meth:`StackedMLP.draw_dropout`), in place of
            drawing them from ``dropout_generator``.
        compute_dtype: ``torch.bfloat16`` for mixed precision: the matmuls and activations run
            in bfloat16 on a bfloat16 copy of the weights, while the loss and the returned
            gradient stay float32 (the weights and optimizer state are never rounded). None
            computes in ``flat``'s dtype.

    Returns:
        ``(loss, grad)`` with shapes ``(n_models,)`` and ``flat.shape``, in ``flat``'s dtype.
    """
    low = compute_dtype is not None and compute_dtype != flat.dtype
    if model.config.activation not in MANUAL_ACTIVATIONS:
        return _autograd(
            model,
            flat,
            inputs,
            targets,
            weight_scale,
            classification,
            dropout_generator,
            dropout_draws,
            compute_dtype if low else None,
        )
    params = flat.to(compute_dtype) if low else flat
    layer_inputs, activations, dropout_masks = [], [], []
    hidden = inputs.to(compute_dtype) if low else inputs
    n_layers = len(model.layers)
    for index, layer in enumerate(model.layers):
        weight, bias = model.layer_views(params, layer)
        layer_inputs.append(hidden)
        hidden = linear_forward(hidden, weight, bias)
        if index < n_layers - 1:
            # In place: the backward needs only the activation's output, not its input.
            hidden = hidden.relu_() if model.config.activation == "relu" else hidden.tanh_()
            activations.append(hidden)
            draw = model.dropout_draw(index, hidden, dropout_generator, dropout_draws)
            if draw is not None:
                keep = 1 - model.config.dropout
                scale = ((draw < keep) / keep).to(hidden.dtype)
                hidden = hidden * scale
                dropout_masks.append(scale)
            else:
                dropout_masks.append(None)
    outputs = hidden.to(flat.dtype) if low else hidden  # the loss is computed in float32
    loss, grad_out = _loss_and_output_grad(outputs, targets, weight_scale, classification)

    grads: list[Tensor] = []
    grad = grad_out.to(compute_dtype) if low else grad_out
    for index in range(n_layers - 1, -1, -1):
        layer = model.layers[index]
        grads.append(grad.sum(dim=1))  # bias
        grads.append(weight_grad(layer_inputs[index], grad))
        if index == 0:
            break
        weight, _ = model.layer_views(params, layer)
        grad = input_grad(grad, weight)  # a new tensor: the steps below work in place
        if dropout_masks[index - 1] is not None:
            grad.mul_(dropout_masks[index - 1])
        # The fused kernels autograd itself uses for these activations, written in place.
        activation = activations[index - 1]
        if model.config.activation == "relu":
            torch.ops.aten.threshold_backward.grad_input(grad, activation, 0, grad_input=grad)
        else:
            torch.ops.aten.tanh_backward.grad_input(grad, activation, grad_input=grad)
    grad = torch.cat(grads[::-1], dim=1)
    return loss, grad.to(flat.dtype) if low else grad


def _loss_and_output_grad(
    outputs: Tensor, targets: Tensor, weight_scale: Tensor, classification: bool
) -> tuple[Tensor, Tensor]:
    if classification:
        log_probs = torch.log_softmax(outputs, dim=-1)
        per_sample = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        grad = log_probs.exp() - torch.nn.functional.one_hot(targets, outputs.shape[-1])
        return (per_sample * weight_scale).sum(dim=1), grad * weight_scale.unsqueeze(-1)
    diff = outputs.squeeze(-1) - targets
    loss = (diff * diff * weight_scale).sum(dim=1)
    return loss, (2 * diff * weight_scale).unsqueeze(-1)


def _autograd(
    model: StackedMLP,
    flat: Tensor,
    inputs: Tensor,
    targets: Tensor,
    weight_scale: Tensor,
    classification: bool,
    dropout_generator: torch.Generator | None,
    dropout_draws: list[Tensor] | None,
    compute_dtype: torch.dtype | None,
) -> tuple[Tensor, Tensor]:
    leaf = flat.detach().requires_grad_(True)
    with torch.enable_grad():
        params, batch = leaf, inputs
        if compute_dtype is not None:
            params, batch = leaf.to(compute_dtype), inputs.to(compute_dtype)
        outputs = model.forward(
            params, batch, dropout_generator=dropout_generator, dropout_draws=dropout_draws
        ).to(flat.dtype)
        per_sample = per_sample_loss(outputs, targets, classification=classification)
        loss = (per_sample * weight_scale).sum(dim=1)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return loss.detach(), grad


def per_sample_loss(outputs: Tensor, targets: Tensor, *, classification: bool) -> Tensor:
    """Squared error or cross-entropy of each sample, shape ``(n_models, batch)``."""
    if classification:
        losses = torch.nn.functional.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), reduction="none"
        )
        return losses.view(targets.shape)
    return (outputs.squeeze(-1) - targets) ** 2
