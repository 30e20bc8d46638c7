"""Map arithmetic shared by every method and metric: upsampling and min-max normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["normalize_maps", "upsample", "is_constant"]


def normalize_maps(maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12) -> torch.Tensor:
    """Min-max normalise each map of a (B×…×)h×w stack to [0, 1].

    A map whose range is below ``rtol`` of its magnitude (or below ``atol``) is constant up to
    rounding — for instance a constant map after bilinear upsampling — and becomes zeros, never
    NaN or amplified rounding noise.
    """
    flat = maps.flatten(-2)
    lo, hi = torch.aminmax(flat, dim=-1, keepdim=True)
    return ((flat - lo) / (hi - lo).clamp_min(atol)).masked_fill_(_constant(lo, hi, rtol, atol), 0.0).view_as(maps)


def is_constant(maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12) -> torch.Tensor:
    """Which maps of a (B×…×)h×w stack are constant up to rounding (the shape without h×w)."""
    return _constant(*torch.aminmax(maps.flatten(-2), dim=-1), rtol, atol)


def _constant(lo: torch.Tensor, hi: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    return (hi - lo) <= torch.clamp_min(rtol * torch.maximum(hi.abs(), lo.abs()), atol)


def upsample(maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear upsampling of B×h×w or B×Q×h×w maps to ``size``.

    Half-pixel centres by default (``align_corners=False``, as ``cv2.resize`` and torchcam);
    ``align_corners=True`` is ``nn.UpsamplingBilinear2d``, which pytorch-grad-cam's Score-CAM uses.
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if maps.dim() == 3:
        return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=align_corners).squeeze(1)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=align_corners)
