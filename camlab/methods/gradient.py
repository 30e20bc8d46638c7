"""Gradient-weighted CAMs: Grad-CAM (Selvaraju et al., ICCV 2017), Grad-CAM++ (Chattopadhay et
al., WACV 2018), SmoothGrad-CAM++ (Omeiza et al. 2019), XGrad-CAM (Fu et al., BMVC 2020) — restated
by Feng et al. 2023, eq 3–6 — and the element-wise LayerCAM (Jiang et al., IEEE TIP 2021) and
HiResCAM (Draelos & Carin 2020).

All take ``g = ∂S_c/∂F`` (``S_c`` the target logit) from the one forward pass of the base
pipeline, computed with ``torch.autograd.grad``; the first four turn ``g`` into a channel weight,
the last two keep it per position. Every 0/0 is defined as 0, so constant or all-zero maps never
give NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.device import to_model_format
from ..core.layers import capture
from .base import BaseCAM, Context

__all__ = ["GradCAM", "GradCAMpp", "SmoothGradCAMpp", "XGradCAM", "LayerCAM", "HiResCAM", "gradcampp_weights"]


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0 wherever den == 0."""
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num))


def gradcampp_weights(
    acts: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, d3: torch.Tensor, eps: float = 0.0
) -> torch.Tensor:
    """Grad-CAM++ channel weights from the derivative terms (eq 4, exponential-score closed form).

    ``α = D2 / (2·D2 + Σ_ab F(a,b)·D3 + eps)`` and ``w = Σ_ij α·ReLU(D1)``, with ``D_k`` standing
    for ``g^k`` (or its average over noisy copies, SmoothGrad-CAM++); 0/0 → 0.
    """
    sum_a = acts.sum(dim=(2, 3), keepdim=True)
    alpha = _safe_div(d2, 2 * d2 + sum_a * d3 + eps)
    return (alpha * d1.clamp_min(0)).sum(dim=(2, 3))


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017, eq 1–2; Feng et al. 2023, eq 3): each channel
    weighted by its mean gradient,

        w_n = 1/Z Σ_ij ∂S_c/∂F_n(i,j),    L = ReLU(Σ_n w_n F_n),

    Z = h·w the number of positions, ``S_c`` the target logit (Feng et al.'s eq 3 prints the sum
    without 1/Z: the same map after the min-max scaling); heatmap = s(Up(L)).

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, "blocks.6")(x)  # top-1 class; targets=… for others
        >>> exp.heatmaps.shape, round(float(exp.heatmaps.max()), 4), exp.n_forward
        (torch.Size([1, 224, 224]), 1.0, 1)
    """

    name = "gradcam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        return ctx.gradients.mean(dim=(2, 3))


class GradCAMpp(BaseCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018; Feng et al. 2023, eq 4): positive gradients
    weighted per position (the closed form for an exponential score, :func:`gradcampp_weights`),

        α_n(i,j) = g² / (2 g² + Σ_ab F_n(a,b) · g³),    w_n = Σ_ij α_n(i,j) · ReLU(g),
        L = ReLU(Σ_n w_n F_n),    with g = ∂S_c/∂F_n(i,j) and 0/0 = 0.

    ``eps`` is added to the denominator of α. The formula has none (default 0, with 0/0 → 0);
    pytorch-grad-cam adds ``1e-6``, which is not negligible here: the gradients at the last
    layers are ~1e-3, so ``g²`` is of the order of ``eps``. ``eps=1e-6`` reproduces it.

    Examples:
        >>> exp = camlab.methods.GradCAMpp(clf, "blocks.6")(x)
        >>> exp.heatmaps.shape, exp.n_forward
        (torch.Size([1, 224, 224]), 1)
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
    """XGrad-CAM (Fu et al., BMVC 2020; Feng et al. 2023, eq 6): gradients weighted by the
    activation's share of its map,

        w_n = Σ_ij F_n(i,j) / Σ_ab F_n(a,b) · ∂S_c/∂F_n(i,j),    L = ReLU(Σ_n w_n F_n),

    with 0/0 = 0 for an all-zero map.

    Examples:
        >>> exp = camlab.methods.XGradCAM(clf, "blocks.6")(x)
        >>> exp.heatmaps.shape
        torch.Size([1, 224, 224])
    """

    name = "xgradcam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        a = ctx.activations
        return _safe_div((a * ctx.gradients).sum(dim=(2, 3)), a.sum(dim=(2, 3)))


class SmoothGradCAMpp(BaseCAM):
    """Smooth Grad-CAM++ (Omeiza et al. 2019; Feng et al. 2023, eq 5): Grad-CAM++ with the
    derivative terms averaged over M = ``n_samples`` noisy copies ``X + ε_m``,

        D_k = 1/M Σ_m (∂S_c/∂F_n(i,j) at X + ε_m)^k  (k = 1, 2, 3),
        α = D_2 / (2 D_2 + Σ_ab F_n(a,b) · D_3),    w_n = Σ_ij α · ReLU(D_1),    L = ReLU(Σ_n w_n F_n).

    ``ε ~ N(0, σ²)`` with ``σ = noise_std · (max X − min X)`` per image, seeded. The feature maps
    ``F`` are those of the clean input. With one sample and ``noise_std=0`` it is exactly
    Grad-CAM++. Cost: 1 + ``n_samples`` forward and backward passes, sent ``batch_size`` images
    at a time.

    Examples:
        >>> exp = camlab.methods.SmoothGradCAMpp(clf, "blocks.6", n_samples=2)(x)
        >>> exp.heatmaps.shape, exp.n_forward  # the clean pass and 2 noisy copies
        (torch.Size([1, 224, 224]), 3)
    """

    name = "smoothgradcampp"
    needs_gradients = True

    def __init__(
        self,
        module: nn.Module,
        target_layer,
        n_samples: int = 8,
        noise_std: float = 0.15,
        seed: int = 0,
        batch_size: int | None = None,
    ):
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
            with capture(self.net, self.layer_name, gradients=True) as cap:  # on the network of the first pass
                logits = self.net(noisy)
                g = (
                    cap.grad(logits.gather(1, t.repeat(k)[:, None]).sum())
                    .detach()
                    .view(k, b, *ctx.activations.shape[1:])
                )
            d1 = d1 + g.sum(0)
            d2 = d2 + (g**2).sum(0)
            d3 = d3 + (g**3).sum(0)
        n = self.n_samples
        return gradcampp_weights(ctx.activations, d1 / n, d2 / n, d3 / n)


class LayerCAM(BaseCAM):
    """LayerCAM (Jiang et al., IEEE TIP 2021, eq 6–7): the positive gradient kept per position,

        L = ReLU(Σ_n ReLU(∂S_c/∂F_n) ⊙ F_n),

    so that earlier, higher-resolution layers give usable maps too.

    Examples:
        >>> exp = camlab.methods.LayerCAM(clf, "blocks.4")(x)  # an earlier layer, 14×14
        >>> exp.heatmaps.shape, exp.raw.shape  # raw: L at the layer's resolution
        (torch.Size([1, 224, 224]), torch.Size([1, 14, 14]))
    """

    name = "layercam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        return (ctx.gradients.clamp_min(0) * ctx.activations).sum(dim=1)


class HiResCAM(BaseCAM):
    """HiResCAM (Draelos & Carin 2020): the gradient kept per position, sign and all,

        L = ReLU(Σ_n ∂S_c/∂F_n ⊙ F_n).

    Where the gradient is constant in space — a layer followed only by global average pooling
    and a linear head, such as efficientnet's ``bn2`` — it equals Grad-CAM.

    Examples:
        >>> hires = camlab.methods.HiResCAM(clf, clf.target_layer)(x)  # bn2: global pooling follows
        >>> grad = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> torch.allclose(hires.heatmaps, grad.heatmaps, atol=1e-4)
        True
    """

    name = "hirescam"
    needs_gradients = True

    def compute(self, ctx: Context) -> torch.Tensor:
        return (ctx.gradients * ctx.activations).sum(dim=1)
