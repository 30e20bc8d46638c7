"""Choosing the torch device a model and its explanations run on."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "module_device", "default_batch_size"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (or ``None``) into CUDA when present, else the CPU.

    Any other value is passed to :class:`torch.device`; asking for CUDA on a machine
    without it is an error that says so, not a failure deep inside torch.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for CUDA, but no CUDA device is available here; use 'auto' or 'cpu'")
    return dev


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with neither."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass for perturbation methods when the caller does not say.

    On the CPU small batches are cheapest per image (measured with efficientnet_lite0 on a 2-core
    machine: batches of 1–8 within the run-to-run noise of each other, the best in the benchmark
    runs at 4; +30 % per image at 16 and +80 % at 32), so 4; on a GPU, 64 (a few GB at 224×224
    for the networks here).
    """
    return 64 if device.type == "cuda" else 4
