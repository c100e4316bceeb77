"""How many (model, sample) rows a training step may hold on the device at once.

A step on ``n_models`` stacked models with batch ``b`` holds about ``n_models * b`` rows of
activations. When that would not fit, the engine splits the step into chunks and adds their
gradients: the exact gradient of the whole batch (full-batch included), computed in pieces.

On the CPU a step is also cut into pieces of at most :func:`host_piece_rows` rows, however much
memory is free: there, big steps are slow for want of cache, not memory (see that function).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainers.stacked_mlp import StackedMLP

SAFETY_MARGIN = 0.5  # use at most this share of the free memory
FALLBACK_FREE_BYTES = 4 * 2**30  # when the free memory cannot be read
FLOAT_BYTES = 4
# On the CPU, a piece of a step holds at most this many bytes of activations (host_piece_rows).
HOST_PIECE_BYTES = 16 * 2**20


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


def host_piece_rows(model: StackedMLP) -> int:
    """The most (model, sample) rows a CPU step computes at once, the rest in further pieces.

    Why: a step's activations of tens or hundreds of MB are fresh pages for every op (the C
    allocator hands blocks that large back to the kernel when freed, so each new one page-faults
    in again) and stream through memory rather than cache. Measured on the flops bench's
    full-batch stack (20 models x 16000 samples, MLP 50->256->1, one thread): 1.35 s whole,
    0.83 s in pieces of 20480 rows, 0.52 s in pieces of 2560 rows (16 MiB by
    :func:`bytes_per_row`), with page faults from 431k to none; batch 1024 went 1.17 s -> 0.60 s.
    """
    return max(1, HOST_PIECE_BYTES // bytes_per_row(model))


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
