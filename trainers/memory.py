"""How many (model, sample) rows a training step may hold on the device at once.

A step on ``n_models`` stacked models with batch ``b`` holds about ``n_models * b`` rows of
activations. When that would not fit, the engine splits the step into chunks and adds their
gradients: the exact gradient of the whole batch (full-batch included), computed in pieces.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainers.stacked_mlp import StackedMLP

SAFETY_MARGIN = 0.5  # use at most this share of the free memory
FALLBACK_FREE_BYTES = 4 * 2**30  # when the free memory cannot be read
FLOAT_BYTES = 4


def bytes_per_row(model: StackedMLP) -> int:
    """Device bytes one sample of one model costs in a training step, with room to spare.

    The gathered inputs, each layer's output kept for the backward pass (plus a dropout mask),
    the output's loss terms, and the gradients flowing back: about twice the forward's floats.
    """
    hidden = sum(model.config.hidden)
    forward_floats = model.n_inputs + 3 * hidden + 3 * model.n_outputs
    return 2 * forward_floats * FLOAT_BYTES


def free_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's own count, MPS's budget, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
    return _host_available_bytes()


def max_step_rows(model: StackedMLP, device: torch.device) -> int:
    """The most (model, sample) rows one step (or chunk) should hold on ``device``; at least 1."""
    return max(1, int(free_bytes(device) * SAFETY_MARGIN) // bytes_per_row(model))


def _host_available_bytes() -> int:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_FREE_BYTES
