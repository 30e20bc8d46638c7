"""The one masking function, and batched scoring of masked inputs.

Masking an input ``X`` with a map ``M ∈ [0, 1]^{H×W}`` is ``X ⊙ M`` on the *normalised*
tensor, where masked-out pixels take the value of a **baseline** ``X_b``:
``X ⊙ M + X_b ⊙ (1 − M)``. The default baseline is zeros in normalised space (the dataset mean
colour); ``"blur"`` is a heavily blurred copy of the image (Group-CAM, insertion). Score-CAM,
Group-CAM, Cluster-CAM and the metrics all go through :func:`apply_masks` and
:func:`score_masked`.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
import torch.nn.functional as F
from torch import nn

from .device import module_memory_format
from .maps import normalize_maps, upsample

__all__ = [
    "Baseline",
    "make_baseline",
    "check_baseline",
    "blur",
    "apply_masks",
    "score_batch",
    "score_masked",
    "target_scores",
    "check_score",
    "SCORES",
]

Baseline = Union[Literal["zeros", "blur"], float, torch.Tensor, None]
SCORES = ("softmax", "logit")


def blur(x: torch.Tensor, kernel_size: int = 51, sigma: float = 50.0) -> torch.Tensor:
    """Gaussian blur of a (B×)C×H×W tensor: torchvision's ``gaussian_blur`` (reflect padding),
    Group-CAM's 51×51 kernel with σ = 50. An image no larger than half the kernel cannot be
    reflect-padded; it is padded by repeating its edge instead."""
    from torchvision.transforms.functional import gaussian_blur

    half = kernel_size // 2
    if min(x.shape[-2:]) > half:
        return gaussian_blur(x, [kernel_size, kernel_size], [sigma, sigma])
    squeeze = x.dim() == 3
    padded = F.pad(x[None] if squeeze else x, (half, half, half, half), mode="replicate")
    out = gaussian_blur(padded, [kernel_size, kernel_size], [sigma, sigma])[..., half:-half, half:-half]
    return out[0] if squeeze else out


def make_baseline(x: torch.Tensor, baseline: Baseline = "zeros") -> torch.Tensor:
    """The all-masked input ``X_b`` for ``x`` (same shape).

    ``"zeros"`` or ``None``: zeros in normalised space; ``"blur"``: :func:`blur` of ``x``; a float:
    that constant; a tensor: used as is (broadcast to ``x``).
    """
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return torch.zeros_like(x)
    if isinstance(baseline, str):
        if baseline == "blur":
            return blur(x)
        raise ValueError(f"unknown baseline {baseline!r}; use 'zeros', 'blur', a number or a tensor")
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
        except RuntimeError as exc:
            raise ValueError(
                f"a baseline tensor of shape {tuple(baseline.shape)} does not broadcast to the input {tuple(x.shape)}"
            ) from exc
    raise TypeError(f"baseline must be 'zeros', 'blur', a number or a tensor, not {type(baseline).__name__}")


def check_baseline(baseline: Baseline) -> Baseline:
    """Validate a ``baseline=`` option when a method is built, not at its first call."""
    make_baseline(torch.zeros(1, 1, 1), baseline)
    return baseline


def check_score(score: str) -> str:
    """Validate a ``score=`` option: ``"softmax"`` or ``"logit"``."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; use one of {SCORES}")
    return score


def apply_masks(x: torch.Tensor, masks: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
    """``X ⊙ M + X_b ⊙ (1 − M)`` for each mask.

    Args:
        x: C×H×W (one image, every mask applies to it) or K×C×H×W (mask k applies to image k).
        masks: K×H×W, values in [0, 1].
        base: the baseline, same shape as ``x``; ``None`` means zeros.
    Returns:
        K×C×H×W masked inputs.
    """
    m = masks[:, None]
    if base is None:
        return x * m
    return base + (x - base) * m


def target_scores(logits: torch.Tensor, targets: torch.Tensor, score: str = "softmax") -> torch.Tensor:
    """The score of each row's target: softmax probability (``"softmax"``) or logit (``"logit"``)."""
    if score == "softmax":
        return logits.softmax(dim=1).gather(1, targets[:, None]).squeeze(1)
    check_score(score)
    return logits.gather(1, targets[:, None]).squeeze(1)


def score_batch(module: nn.Module, x: torch.Tensor, targets: torch.Tensor, score: str = "softmax") -> torch.Tensor:
    """The score of each image's target for a batch that needs no gradient, in one pass of
    ``module`` under ``torch.inference_mode()``; returned as a normal tensor."""
    with torch.inference_mode():
        out = target_scores(module(x), targets, score)
    return out.clone()


def score_masked(
    module: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    owner: torch.Tensor,
    targets: torch.Tensor,
    baseline: Baseline = "zeros",
    score: str = "softmax",
    batch_size: int = 32,
    normalize: bool = True,
    bases: torch.Tensor | None = None,
    align_corners: bool = False,
) -> torch.Tensor:
    """Score masked copies of a batch, ``batch_size`` images per forward pass.

    Mask ``k`` is ``maps[k]`` — upsampled to the input size when it is smaller and, with
    ``normalize``, min-max scaled to [0, 1] (``s(Up(F))``) — applied to image ``owner[k]`` of
    ``x`` (B×C×H×W) with its baseline (``bases``, when given, is that baseline already made);
    the result is the score of ``targets[owner[k]]``. The masked images are built one chunk at a
    time, never all at once, in the model's memory layout, and scored under
    ``torch.inference_mode()`` (nothing here needs autograd), through ``module`` as given (a
    method passes its ``net``: a Classifier's folded twin, :mod:`camlab.folding`).

    Returns:
        K scores, on the model's device.
    """
    check_score(score)
    size = tuple(x.shape[-2:])
    layout = module_memory_format(module)
    zero_base = bases is None and (baseline is None or (isinstance(baseline, str) and baseline == "zeros"))
    with torch.inference_mode():
        if bases is None and not zero_base:
            bases = make_baseline(x, baseline)
        out = torch.empty(maps.shape[0], device=x.device, dtype=x.dtype)
        for start in range(0, maps.shape[0], batch_size):
            idx = slice(start, start + batch_size)
            m = maps[idx].to(x.dtype)
            if tuple(m.shape[-2:]) != size:
                m = upsample(m, size, align_corners)
            if normalize:
                m = normalize_maps(m)
            who = owner[idx]
            # one image for the whole chunk (the usual case): mask it by broadcasting, no gathered copies
            single = bool((who == who[0]).all())
            pick = who[0] if single else who
            batch = apply_masks(x[pick], m, None if zero_base else bases[pick]).contiguous(memory_format=layout)
            out[idx] = target_scores(module(batch), targets[who], score)
    return out.clone()  # a normal tensor: the caller may write into it outside inference mode
