"""Pick the torch device a sweep trains on."""

from __future__ import annotations

import shutil

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


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`DeviceError` when ``device`` cannot train in ``precision``."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"precision='bf16' needs a GPU with bfloat16 support (compute capability 8.0 or "
            f"newer); {torch.cuda.get_device_name(device)} has none. Use precision fp32."
        )


def check_capture(capture: str, device: torch.device) -> None:
    """Raise :class:`DeviceError` when ``device`` cannot compile the step (``capture``)."""
    if capture != "compile":
        return
    if device.type == "mps":
        raise DeviceError("capture='compile' runs on cpu and cuda only. Use capture off on mps.")
    if device.type == "cpu" and not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        raise DeviceError(
            "capture='compile' on the CPU needs a C++ compiler (g++ or clang++) on PATH: "
            "torch.compile builds C++ kernels. Install one, or use capture off."
        )
    if device.type == "cuda" and not _has_triton():
        raise DeviceError(
            "capture='compile' on CUDA needs Triton, which this torch install lacks. "
            "Install torch's CUDA build with its triton package, or use capture off."
        )


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return bool(has_triton())
