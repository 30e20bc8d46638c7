"""Choosing the torch device a model and its explanations run on."""

from __future__ import annotations

import torch

__all__ = [
    "resolve_device",
    "module_device",
    "default_batch_size",
    "preferred_memory_format",
    "module_memory_format",
    "to_model_format",
]


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
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
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
    """Images per forward pass for perturbation methods when the caller does not say: 4 on the
    CPU, the fastest batch size of ``benchmarks/bench_batch.py`` on the project's machine (the
    measurements are in ``benchmarks/RESULTS.md``, "Memory layout and batch size"); 64 on a GPU,
    a few GB at 224×224 for these networks (not tuned by a measurement yet).
    """
    return 64 if device.type == "cuda" else 4


def preferred_memory_format(device: torch.device) -> torch.memory_format:
    """The memory layout :func:`camlab.load_model` gives a network on ``device``:
    ``torch.channels_last`` (NHWC) on the CPU, where ``benchmarks/bench_batch.py`` measured masked
    batches cheaper in it (``benchmarks/RESULTS.md``, "Memory layout and batch size"); the
    default layout on CUDA until a GPU measurement says otherwise.
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def module_memory_format(module: torch.nn.Module) -> torch.memory_format:
    """``torch.channels_last`` when the module's convolution weights are stored that way, else the
    default layout. Judged on the first 4-D weight whose layout is unambiguous (more than one input
    channel and a kernel larger than 1×1)."""
    for p in module.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            cl = p.is_contiguous(memory_format=torch.channels_last)
            return torch.channels_last if cl and not p.is_contiguous() else torch.contiguous_format
    return torch.contiguous_format


def to_model_format(x: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """A B×C×H×W batch on the module's device and in its memory layout (no copy when it already is)."""
    x = x.to(module_device(module))
    return x.contiguous(memory_format=module_memory_format(module)) if x.dim() == 4 else x
