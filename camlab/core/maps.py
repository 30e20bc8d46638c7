"""Map arithmetic shared by every method and metric: upsampling and min-max normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "normalize_maps",
    "normalizing_affine",
    "upsample",
    "is_constant",
    "common_scale",
    "map_correlation",
    "correlation_matrix",
    "near_identical",
]


def normalize_maps(maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12) -> torch.Tensor:
    """Min-max normalise each map of a (B×…×)h×w stack to [0, 1].

    A map whose range is below ``rtol`` of its magnitude (or below ``atol``) is constant up to
    rounding — for instance a constant map after bilinear upsampling — and becomes zeros, never
    NaN or amplified rounding noise.
    """
    flat = maps.flatten(-2)
    lo, scale = normalizing_affine(maps, rtol, atol)
    return ((flat - lo[..., None]) * scale[..., None]).view_as(maps)


def normalizing_affine(
    maps: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
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


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r between maps ``a[i]`` and ``b[i]`` of two B×h×w stacks, one value per image (B,).

    A constant map ranks nothing and correlates with no map: its r is 0, never NaN.

    >>> a = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    >>> map_correlation(a, 2 * a + 1), map_correlation(a, -a), map_correlation(a, torch.ones_like(a))
    (tensor([1.]), tensor([-1.]), tensor([0.]))
    """
    if a.shape != b.shape:
        raise ValueError(f"the two stacks of maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    u = a.flatten(1).double() - a.flatten(1).double().mean(1, keepdim=True)
    v = b.flatten(1).double() - b.flatten(1).double().mean(1, keepdim=True)
    norm = u.norm(dim=1) * v.norm(dim=1)
    r = (u * v).sum(1) / norm.clamp_min(1e-300)
    return torch.where(norm > 0, r, torch.zeros_like(r)).clamp(-1, 1).float()


def correlation_matrix(maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """:func:`map_correlation` between every pair of named B×h×w stacks: M×M×B (M names, B images)."""
    stacks = list(maps.values())
    return torch.stack([torch.stack([map_correlation(a, b) for b in stacks]) for a in stacks])


def near_identical(r: torch.Tensor, names: list[str], threshold: float = 0.99) -> list[list[str]]:
    """Groups of names whose maps are the same in effect: joined when their mean r over the images
    (``r``: M×M×B, from :func:`correlation_matrix`) reaches ``threshold``, transitively."""
    mean = r.mean(-1)
    groups: list[list[str]] = []
    seen: set[int] = set()
    for i in range(len(names)):
        if i in seen:
            continue
        stack, members = [i], []
        seen.add(i)
        while stack:
            k = stack.pop()
            members.append(k)
            for j in range(len(names)):
                if j not in seen and float(mean[k, j]) >= threshold:
                    seen.add(j)
                    stack.append(j)
        groups.append([names[k] for k in sorted(members)])
    return groups
