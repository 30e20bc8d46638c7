"""Map arithmetic shared by every method and metric: upsampling and min-max normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["normalize_maps", "normalizing_affine", "upsample", "is_constant", "common_scale"]


def normalize_maps(maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12) -> torch.Tensor:
    """Min-max normalise each map of a (B×…×)h×w stack to [0, 1].

    A map whose range is below ``rtol`` of its magnitude (or below ``atol``) is constant up to
    rounding — for instance a constant map after bilinear upsampling — and becomes zeros, never
    NaN or amplified rounding noise.
    """
    flat = maps.flatten(-2)
    lo, scale = normalizing_affine(maps, rtol, atol)
    return ((flat - lo[..., None]) * scale[..., None]).view_as(maps)


def normalizing_affine(maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, scale)`` per map such that ``normalize_maps(maps) == (maps − lo) · scale``.

    ``scale`` is 0 for a constant map. Useful where the normalised maps are only summed: the sum
    is affine in the maps, so it can be taken before an upsampling instead of after it.
    """
    lo, hi = _extremes(maps)
    return lo, (1.0 / (hi - lo).clamp_min(atol)).masked_fill_(_constant(lo, hi, rtol, atol), 0.0)


def is_constant(maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12) -> torch.Tensor:
    """Which maps of a (B×…×)h×w stack are constant up to rounding (the shape without h×w)."""
    return _constant(*_extremes(maps), rtol, atol)


def _extremes(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # amin and amax, not aminmax: on the CPU torch's aminmax along a dimension is not vectorised
    # and was an order of magnitude slower for a batch of 224×224 maps
    flat = maps.flatten(-2)
    return flat.amin(-1), flat.amax(-1)


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


def common_scale(raws: "list[torch.Tensor] | tuple[torch.Tensor, ...]", size: tuple[int, int]) -> list[torch.Tensor]:
    """Several B×h×w raw maps of the same images (e.g. :attr:`Explanation.raw` for two classes)
    → ReLU, upsampled to ``size`` and divided, image by image, by the largest value over all of
    them, so they share one scale [0, 1]: a weak class stays faint beside a strong one, which
    per-map min–max scaling hides. An image whose maps are all ≤ 0 gives zeros.

    >>> a, b = torch.tensor([[[0.0, 2.0]]]), torch.tensor([[[1.0, -1.0]]])
    >>> [m.tolist() for m in common_scale([a, b], (1, 2))]
    [[[[0.0, 1.0]]], [[[0.5, 0.0]]]]
    """
    ups = [upsample(r.float().clamp_min(0), size) for r in raws]
    top = torch.stack([u.flatten(1).amax(1) for u in ups]).amax(0)
    scale = torch.where(top > 0, 1.0 / top.clamp_min(1e-30), torch.zeros_like(top))
    return [u * scale[:, None, None] for u in ups]
