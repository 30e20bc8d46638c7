"""Gradient-weighted CAMs: Grad-CAM, Grad-CAM++, SmoothGrad-CAM++, XGrad-CAM (Feng et al. 2023,
eq 3–6), and the element-wise LayerCAM (Jiang et al. 2021) and HiResCAM (Draelos & Carin 2020).

All take ``g = ∂S_c/∂F`` (``S_c`` the target logit) from the one forward pass of the base
pipeline, computed with ``torch.autograd.grad``; the first four turn ``g`` into a channel weight,
the last two keep it per position. Every 0/0 is defined as 0, so constant or all-zero maps never
give NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from ..device import to_model_format
from ..folding import folded
from ..layers import capture
from .base import BaseCAM, Context

__all__ = ["GradCAM", "GradCAMpp", "SmoothGradCAMpp", "XGradCAM", "LayerCAM", "HiResCAM", "gradcampp_weights"]


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0 wherever den == 0."""
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num))


def gradcampp_weights(acts: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, d3: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Grad-CAM++ channel weights from the derivative terms (eq 4, exponential-score closed form).

    ``α = D2 / (2·D2 + Σ_ab F(a,b)·D3 + eps)`` and ``w = Σ_ij α·ReLU(D1)``, with ``D_k`` standing
    for ``g^k`` (or its average over noisy copies, SmoothGrad-CAM++); 0/0 → 0.
    """
    sum_a = acts.sum(dim=(2, 3), keepdim=True)
    alpha = _safe_div(d2, 2 * d2 + sum_a * d3 + eps)
    return (alpha * d1.clamp_min(0)).sum(dim=(2, 3))


class GradCAM(BaseCAM):
    r"""Grad-CAM (eq 3): :math:`w_n = \frac{1}{Z}\sum_{ij} \partial S_c / \partial F_n(i,j)`."""

    name = "gradcam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        return ctx.gradients.mean(dim=(2, 3))


class GradCAMpp(BaseCAM):
    r"""Grad-CAM++ (eq 4): pixel-wise weighted positive gradients, :func:`gradcampp_weights`.

    ``eps`` is added to the denominator of α. The formula has none (default 0, with 0/0 → 0);
    pytorch-grad-cam adds ``1e-6``, which is not negligible here: the gradients at the last
    layers are ~1e-3, so ``g²`` is of the order of ``eps``. ``eps=1e-6`` reproduces it.
    """

    name = "gradcampp"
    needs_gradients = True

    def __init__(self, module: nn.Module, target_layer, eps: float = 0.0):
        super().__init__(module, target_layer)
        if not eps >= 0:
            raise ValueError(f"eps must be ≥ 0, got {eps}")
        self.eps = float(eps)

    def params(self):
        return {**super().params(), "eps": self.eps}

    def compute(self, ctx: Context) -> torch.Tensor:
        g = ctx.gradients
        return gradcampp_weights(ctx.activations, g, g**2, g**3, self.eps)


class XGradCAM(BaseCAM):
    r"""XGrad-CAM (eq 6): :math:`w_n = \sum_{ij} \frac{F_n(i,j)}{\sum_{ab} F_n(a,b)} \partial S_c/\partial F_n(i,j)`."""

    name = "xgradcam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        a = ctx.activations
        return _safe_div((a * ctx.gradients).sum(dim=(2, 3)), a.sum(dim=(2, 3)))


class SmoothGradCAMpp(BaseCAM):
    r"""SmoothGrad-CAM++ (eq 5): Grad-CAM++ with ``D1, D2, D3`` averaged over noisy copies.

    ``n_samples`` copies ``X + ε``, ``ε ~ N(0, σ²)`` with ``σ = noise_std · (max X − min X)`` per
    image, seeded. The feature maps ``F`` are those of the clean input. With one sample and
    ``noise_std=0`` it is exactly Grad-CAM++. Cost: 1 + ``n_samples`` forward and backward passes,
    sent ``batch_size`` images at a time.
    """

    name = "smoothgradcampp"
    needs_gradients = True

    def __init__(self, module: nn.Module, target_layer, n_samples: int = 8, noise_std: float = 0.15, seed: int = 0, batch_size: int | None = None):
        super().__init__(module, target_layer, batch_size=batch_size)
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be ≥ 1, got {n_samples}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be ≥ 0 (a fraction of the input range), got {noise_std}")
        self.n_samples, self.noise_std, self.seed = int(n_samples), float(noise_std), int(seed)

    def params(self):
        return {**super().params(), "n_samples": self.n_samples, "noise_std": self.noise_std, "seed": self.seed}

    def compute(self, ctx: Context) -> torch.Tensor:
        x, t = ctx.x, ctx.targets
        b = x.shape[0]
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(b, 1, 1, 1)
        d1 = d2 = d3 = 0.0
        # sample k of image i is row k*b + i; chunks of whole samples keep the batch at ≤ batch_size when b is small
        per_chunk = max(1, self.batch_size // b)
        for start in range(0, self.n_samples, per_chunk):
            k = min(per_chunk, self.n_samples - start)
            noise = torch.randn((k, *x.shape), generator=gen).to(x.device) * (self.noise_std * span)
            noisy = to_model_format((x[None] + noise).flatten(0, 1), self.module)
            net = folded(self.module, noisy, keep=self.layer_name)  # as the pipeline's first pass
            with capture(net, self.layer_name, gradients=True) as cap:
                logits = net(noisy)
                g = cap.grad(logits.gather(1, t.repeat(k)[:, None]).sum()).detach().view(k, b, *ctx.activations.shape[1:])
            d1 = d1 + g.sum(0)
            d2 = d2 + (g**2).sum(0)
            d3 = d3 + (g**3).sum(0)
        n = self.n_samples
        return gradcampp_weights(ctx.activations, d1 / n, d2 / n, d3 / n)


class LayerCAM(BaseCAM):
    r"""LayerCAM (Jiang et al., IEEE TIP 2021, eq 6–7): the positive gradient kept per position,
    :math:`L = \mathrm{ReLU}\big(\sum_n \mathrm{ReLU}(\partial S_c/\partial F_n) \odot F_n\big)`.

    >>> exp = LayerCAM(clf.module, "blocks.6")(x)  # doctest: +SKIP
    """

    name = "layercam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        return (ctx.gradients.clamp_min(0) * ctx.activations).sum(dim=1)


class HiResCAM(BaseCAM):
    r"""HiResCAM (Draelos & Carin 2020): the gradient kept per position, sign and all,
    :math:`L = \mathrm{ReLU}\big(\sum_n (\partial S_c/\partial F_n) \odot F_n\big)`.

    Where the gradient is constant in space — a layer followed only by global average pooling
    and a linear head, such as efficientnet's ``bn2`` — it equals Grad-CAM.

    >>> exp = HiResCAM(clf.module, "blocks.6")(x)  # doctest: +SKIP
    """

    name = "hirescam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        return (ctx.gradients * ctx.activations).sum(dim=1)
