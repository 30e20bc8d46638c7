"""Timing a call the same way everywhere: warm-up, median of repeats, CUDA-synchronised.

The benchmark scripts and the efficiency notebook share :func:`time_call`, so their numbers are
measured alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

__all__ = ["Timing", "time_call", "timing_summary", "timing_table"]


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


def time_call(
    fn: Callable[[], Any], repeats: int = 3, warmup: int = 1, device: torch.device | str | None = None
) -> Timing:
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


def timing_summary(rows: Iterable[Mapping[str, Any]], reference: str = "clustercam") -> list[dict[str, Any]]:
    """Per method, from per-image timing rows (``method``, ``image``, ``seconds``, ``full_passes``,
    ``partial_passes``; e.g. ``benchmarks/results/bench_table2_cpu.csv``): the mean seconds per
    image with its 95 % bootstrap interval, the mean full and partial passes per image, and the
    method's time over ``reference``'s, paired image by image (:func:`camlab.evaluation.stats.ratio_interval`).

    >>> table = timing_summary(csv.DictReader(open("bench_table2_cpu.csv")))  # doctest: +SKIP
    >>> table[0]["method"], table[0]["seconds"], table[0]["ratio"]  # doctest: +SKIP
    """
    from .stats import mean_interval, ratio_interval

    by: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        by.setdefault(str(r["method"]), {})[str(r["image"])] = r
    if reference not in by:
        raise ValueError(f"no rows of the reference method {reference!r}; the rows have {sorted(by)}")
    images = sorted(by[reference])
    ref = [float(by[reference][i]["seconds"]) for i in images]
    out = []
    for m, rs in by.items():
        missing = [i for i in images if i not in rs]
        if missing:
            raise ValueError(f"{m} has no row for {len(missing)} image(s) that {reference} has, e.g. {missing[0]}")
        sec = [float(rs[i]["seconds"]) for i in images]
        out.append(
            {
                "method": m,
                "seconds": mean_interval(sec),
                "full_passes": float(np.mean([float(rs[i]["full_passes"]) for i in images])),
                "partial_passes": float(np.mean([float(rs[i]["partial_passes"]) for i in images])),
                "ratio": ratio_interval(sec, ref),
                "n_images": len(images),
            }
        )
    return out


def timing_table(rows: Iterable[Mapping[str, Any]], reference: str = "clustercam") -> str:
    """:func:`timing_summary` as a markdown table."""
    lines = [
        "| method | seconds / image [95 %] | full passes / image | partial passes / image "
        f"| time / {reference} (paired) [95 %] |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in timing_summary(rows, reference):
        s, q = r["seconds"], r["ratio"]
        lines.append(
            f"| {r['method']} | {s.mean:.4f} [{s.lo:.4f}, {s.hi:.4f}] | {r['full_passes']:.1f} "
            f"| {r['partial_passes']:.1f} | {q.mean:.2f}× [{q.lo:.2f}, {q.hi:.2f}] |"
        )
    return "\n".join(lines)
