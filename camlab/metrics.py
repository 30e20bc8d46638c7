"""Evaluation metrics (spec §5), batched, in torch on the model's device.

Every metric masks through :func:`camlab.masking.apply_masks` — the same function the methods
use — on the normalised input, and scores with softmax probabilities.

- :func:`confidence_drop` and :func:`increase` — the paper's Table 1 (eq 23): the explanation
  input is ``E = X ⊙ H``; ``Y = S_c(X)``, ``O = S_c(E)``. ``drop`` is clipped at 0
  (Chattopadhyay et al.'s average drop), ``drop_unclipped`` is eq 23 as printed; the paper does
  not say which it reports (spec §5), so tables show both.
- :func:`deletion` and :func:`insertion` — Petsiuk et al. (2018): pixels in order of heatmap
  value, removed towards the baseline or inserted into a blurred image, in ``n_steps`` steps;
  the area under the score curve over the fraction of pixels.
- :func:`grid_pointing` — tiles of known classes in one composite image: the share of the
  heatmap's positive mass inside the target's tile, and whether its maximum lies there.
- :func:`coverage` — the mean heatmap value, to see when a metric rewards maps that keep most
  of the image.

:func:`measure` computes any of them at once per image (drop and increase share their passes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .device import default_batch_size, to_model_format
from .masking import Baseline, make_baseline, score_batch, score_masked

__all__ = [
    "METRICS",
    "measure",
    "check_metrics",
    "confidence_drop",
    "increase",
    "confidence_summary",
    "Curves",
    "deletion",
    "insertion",
    "coverage",
    "grid_pointing",
    "PointingResult",
]


METRICS = ("drop", "drop_unclipped", "increase", "insertion", "deletion", "coverage")


def _prepare(module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = to_model_format(x, module)
    dev = x.device
    h = torch.as_tensor(heatmaps).to(dev, x.dtype)
    if h.dim() == 2:
        h = h[None]
    if h.shape[0] != x.shape[0] or tuple(h.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(f"heatmaps {tuple(h.shape)} do not match the batch {tuple(x.shape)}: one H×W map per image")
    if torch.isnan(h).any() or h.min() < 0 or h.max() > 1:
        raise ValueError("heatmaps must lie in [0, 1] (as every camlab method returns them)")
    t = torch.as_tensor(targets, dtype=torch.long).flatten().to(dev)
    if t.numel() == 1 and x.shape[0] > 1:
        t = t.expand(x.shape[0])
    if t.numel() != x.shape[0]:
        raise ValueError(f"{t.numel()} targets for a batch of {x.shape[0]} images")
    return x, h, t


def _clean_and_explained(module, x, heatmaps, targets, baseline: Baseline = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    x, h, t = _prepare(module, x, heatmaps, targets)
    y = score_batch(module, x, t)
    owner = torch.arange(x.shape[0], device=x.device)
    o = score_masked(module, x, h, owner, t, baseline=baseline, normalize=False, batch_size=default_batch_size(x.device))
    return y, o


def confidence_drop(module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, clip: bool = True, baseline: Baseline = "zeros") -> torch.Tensor:
    """Per-image relative drop ``(Y − O) / Y`` (eq 23), clipped at 0 unless ``clip=False``.

    Lower is better; ``100 · mean`` is the paper's "confidence drop". A constant zero heatmap
    masks everything: O is the score of the baseline input.
    """
    y, o = _clean_and_explained(module, x, heatmaps, targets, baseline)
    return _drop(y, o, clip)


def _drop(y: torch.Tensor, o: torch.Tensor, clip: bool = True) -> torch.Tensor:
    drop = (y - o) / y
    return drop.clamp_min(0) if clip else drop


def increase(module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, baseline: Baseline = "zeros") -> torch.Tensor:
    """Per-image bool: is the score on the explanation input strictly higher (``O > Y``)?"""
    y, o = _clean_and_explained(module, x, heatmaps, targets, baseline)
    return o > y


def check_metrics(names: Sequence[str]) -> list[str]:
    """The metric names, or a ValueError naming the first unknown one and those available."""
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric {bad[0]!r}; available: {', '.join(METRICS)}")
    return list(names)


def measure(module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, metrics: Sequence[str] = METRICS, n_steps: int = 32) -> dict[str, torch.Tensor]:
    """Per-image values (B,) of each named metric of :data:`METRICS`, on the CPU: confidence drop
    (clipped and unclipped), increase (bool), insertion and deletion areas with ``n_steps``
    steps, coverage. The drops and increase share one clean and one explained pass."""
    metrics = check_metrics(metrics)
    out: dict[str, torch.Tensor] = {}
    if {"drop", "drop_unclipped", "increase"} & set(metrics):
        y, o = _clean_and_explained(module, x, heatmaps, targets)
        if "drop" in metrics:
            out["drop"] = _drop(y, o).cpu()
        if "drop_unclipped" in metrics:
            out["drop_unclipped"] = _drop(y, o, clip=False).cpu()
        if "increase" in metrics:
            out["increase"] = (o > y).cpu()
    if "insertion" in metrics:
        out["insertion"] = insertion(module, x, heatmaps, targets, n_steps=n_steps).auc
    if "deletion" in metrics:
        out["deletion"] = deletion(module, x, heatmaps, targets, n_steps=n_steps).auc
    if "coverage" in metrics:
        out["coverage"] = coverage(heatmaps).cpu()
    return out


def confidence_summary(drops: torch.Tensor | Sequence[float], increases: torch.Tensor | Sequence[bool]) -> dict[str, float]:
    """Table 1's two numbers, as percentages: mean drop and share of increases."""
    d = torch.as_tensor(drops, dtype=torch.float64)
    i = torch.as_tensor(increases, dtype=torch.float64)
    return {"confidence_drop": 100 * float(d.mean()), "increase": 100 * float(i.mean()), "n_images": int(d.numel())}


@dataclass
class Curves:
    """Score curves of deletion or insertion: ``scores`` B×(n_steps+1) at ``fractions``, and the areas."""

    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor


def _order_masks(h: torch.Tensor, n_steps: int) -> torch.Tensor:
    """B×(n_steps+1)×H×W binary masks: step k holds the top ``k/n_steps`` of the pixels by heatmap value."""
    b, hh, ww = h.shape
    n = hh * ww
    order = torch.argsort(h.flatten(1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=h.device).expand(b, n))
    counts = torch.round(torch.linspace(0, n, n_steps + 1, device=h.device)).long()
    return (rank[:, None, :] < counts[None, :, None]).to(h.dtype).view(b, n_steps + 1, hh, ww)


@torch.no_grad()
def _curves(module, x, heatmaps, targets, n_steps, mode, baseline, batch_size) -> Curves:
    if n_steps < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}")
    x, h, t = _prepare(module, x, heatmaps, targets)
    b = x.shape[0]
    steps = _order_masks(h, n_steps)  # 1 where the pixel is among the top k
    if mode == "deletion":
        keep, bases = 1 - steps, make_baseline(x, baseline)
    else:
        keep, bases = steps, make_baseline(x, "blur")
    owner = torch.arange(b, device=x.device).repeat_interleave(n_steps + 1)
    scores = score_masked(module, x, keep.flatten(0, 1), owner, t, normalize=False, bases=bases, batch_size=batch_size or default_batch_size(x.device))
    scores = scores.view(b, n_steps + 1)
    fractions = torch.linspace(0, 1, n_steps + 1, device=x.device, dtype=scores.dtype)
    return Curves(fractions.cpu(), scores.cpu(), torch.trapezoid(scores, fractions, dim=1).cpu())


def deletion(module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, n_steps: int = 32, baseline: Baseline = "zeros", batch_size: int | None = None) -> Curves:
    """Remove pixels (most salient first) towards the baseline; lower area is better."""
    return _curves(module, x, heatmaps, targets, n_steps, "deletion", baseline, batch_size)


def insertion(module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, n_steps: int = 32, batch_size: int | None = None) -> Curves:
    """Insert pixels (most salient first) into a blurred copy of the image; higher area is better."""
    return _curves(module, x, heatmaps, targets, n_steps, "insertion", "blur", batch_size)


def coverage(heatmaps: torch.Tensor) -> torch.Tensor:
    """Mean heatmap value per map (B,): the share of the image a map keeps, softly."""
    h = torch.as_tensor(heatmaps)
    return h.flatten(1).float().mean(1)


@dataclass
class PointingResult:
    """Grid pointing game for one composite and one target tile."""

    mass_inside: float  # share of the heatmap's positive mass inside the tile (1 = perfect)
    max_inside: bool  # whether the heatmap's maximum lies inside the tile


def grid_pointing(heatmap: torch.Tensor, box: tuple[int, int, int, int]) -> PointingResult:
    """Score one H×W heatmap against the tile ``box = (top, left, height, width)`` of its target.

    A heatmap with no positive mass scores 0 and misses.
    """
    h = torch.as_tensor(heatmap).float().clamp_min(0)
    top, left, height, width = box
    total = float(h.sum())
    inside = float(h[top : top + height, left : left + width].sum())
    flat = int(h.flatten().argmax())
    r, c = divmod(flat, h.shape[1])
    hit = total > 0 and top <= r < top + height and left <= c < left + width
    return PointingResult(inside / total if total > 0 else 0.0, bool(hit))
