"""Timing a call the same way everywhere: warm-up, median of repeats, CUDA-synchronised.

The benchmark scripts and the efficiency notebook share :func:`time_call`, so their numbers are
measured alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["Timing", "time_call"]


@dataclass
class Timing:
    """Median wall time of ``repeats`` calls after ``warmup`` calls, and the last result."""

    seconds: float
    all_seconds: list[float]
    peak_memory_mb: float | None
    result: Any


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1, device: torch.device | str | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeats`` timed ones.

    On a CUDA device the clock waits for the GPU before and after each call, and the peak
    memory allocated during the timed calls is reported (``None`` on the CPU).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    device = torch.device(device) if device is not None else None
    result = None
    for _ in range(max(0, warmup)):
        result = fn()
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return Timing(statistics.median(times), times, peak, result)
