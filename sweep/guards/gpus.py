"""``--gpus``: parsed, then checked against the CUDA devices this process sees, before the study,
its run or a worker is created."""

from __future__ import annotations

from sweep.errors import UsageError


def parse_gpus(text: str | None) -> tuple[int, ...]:
    """The device indices ``--gpus`` names: ``all`` or a list like ``0,1``; () when not given.

    Raises:
        UsageError: not a list of distinct indices, no CUDA device, or an index past the last
            device.

    Example:
        >>> parse_gpus(None)
        ()
    """
    if text is None:
        return ()
    if text != "all":
        try:
            gpus = tuple(int(part) for part in text.split(","))
        except ValueError as err:
            raise UsageError(f"--gpus {text[:200]!r}: use 'all' or indices like 0,1.") from err
        if any(gpu < 0 for gpu in gpus) or len(set(gpus)) != len(gpus):
            raise UsageError(f"--gpus {text[:200]!r}: indices must be distinct and >= 0.")
    count = cuda_device_count()
    if count == 0:
        raise UsageError(
            f"--gpus {text[:200]}: no CUDA device is visible (torch.cuda.is_available() is "
            "False). Use --workers N to run several workers on the CPU."
        )
    if text == "all":
        return tuple(range(count))
    beyond = [gpu for gpu in gpus if gpu >= count]
    if beyond:
        raise UsageError(
            f"--gpus {text[:200]}: this machine has {count} CUDA device(s), numbered 0 to "
            f"{count - 1}; there is no device {beyond[0]}. Use indices below {count}, or all."
        )
    return gpus


def cuda_device_count() -> int:
    """CUDA devices this process may use (CUDA_VISIBLE_DEVICES applied); 0 without CUDA."""
    import torch  # heavy: only when --gpus is given

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
