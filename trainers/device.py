"""Pick the torch device a sweep trains on."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """The requested device is not available on this machine."""


def resolve_device(requested: str = "auto") -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N | mps`` into an available :class:`torch.device`.

    ``auto`` prefers CUDA, then Apple's MPS, then the CPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise DeviceError(
            f"device={requested!r} is not a torch device. Use auto, cpu, cuda, cuda:N or mps."
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device={requested!r} was requested but torch.cuda.is_available() is False on this "
            f"machine (torch {torch.__version__}). Use --device auto or --device cpu, or install "
            "a CUDA build of torch."
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise DeviceError(
            f"device={requested!r} was requested but only {torch.cuda.device_count()} CUDA "
            "device(s) are visible. Pick an index below that, or set CUDA_VISIBLE_DEVICES."
        )
    if device.type == "mps" and not _mps_available():
        raise DeviceError(
            f"device={requested!r} was requested but MPS is not available. Use auto or cpu."
        )
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device={requested!r} is not supported. Use auto, cpu, cuda or mps.")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
