"""Vanilla CAM (Zhou et al. 2016; Feng et al. 2023, eq 1–2)."""

from __future__ import annotations

import torch
from torch import nn

from .base import BaseCAM, Context


def _last_linear(module: nn.Module) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"{type(module).__name__} has no nn.Linear classifier; "
            "vanilla CAM needs global average pooling followed by a linear layer"
        )
    return linears[-1]


class CAM(BaseCAM):
    """Class activation map (Zhou et al., CVPR 2016; restated by Feng et al. 2023, eq 1–2): the
    feature maps weighted by the linear classifier's row for the target class c,

        M_c = Σ_n W_fc[c, n] F_n,    S_c = Σ_n W_fc[c, n] · mean_ij F_n(i, j)  (+ bias),

    then heatmap = s(Up(ReLU(M_c))) (s: min-max scaling to [0, 1], Up: bilinear upsampling).

    Only defined when the target layer feeds global average pooling and a single linear layer
    gives the logits. That is checked on every call from the forward pass itself: the logits
    must equal ``fc(mean_ij F)``; otherwise the network (or the layer) is refused.

    Examples:
        >>> exp = camlab.methods.CAM(clf, clf.target_layer)(x)  # the input of global average pooling
        >>> exp.heatmaps.shape, exp.n_forward
        (torch.Size([1, 224, 224]), 1)
    """

    name = "cam"

    def __init__(self, module: nn.Module, target_layer: str | nn.Module):
        super().__init__(module, target_layer)
        self.fc = _last_linear(self.module)

    def compute(self, ctx: Context) -> torch.Tensor:
        n = ctx.activations.shape[1]
        if self.fc.in_features != n:
            raise ValueError(
                f"vanilla CAM needs the layer that feeds global average pooling + linear classifier: "
                f"layer {self.layer_name!r} has {n} channels but the last linear layer takes "
                f"{self.fc.in_features} features. Use a GAP network (efficientnet_lite0, resnet50) at its "
                "default target_layer, or a gradient method for other layers and networks"
            )
        pooled = self.fc(ctx.activations.mean(dim=(2, 3)))
        scale = ctx.logits.abs().max().clamp_min(1.0)
        if not torch.allclose(pooled, ctx.logits, rtol=1e-3, atol=1e-3 * float(scale)):
            raise ValueError(
                f"vanilla CAM needs logits = linear(global-average-pool(features)) at layer {self.layer_name!r}, "
                f"and this network does not compute its logits that way (max difference "
                f"{(pooled - ctx.logits).abs().max():.3g}); use a gradient method instead"
            )
        return self.fc.weight[ctx.targets].to(ctx.activations.dtype)
