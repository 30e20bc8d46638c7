"""A control that must fail the sanity checks: an edge detector that never looks at the model.

Adebayo et al. (NeurIPS 2018) showed that some saliency methods behave like edge detectors: their
maps barely change when the model's weights are randomised. The textbook failing control is an
edge detector itself. :class:`SobelCAM` is one — the Sobel gradient magnitude of the image's
luminance, ``(|G_x| + |G_y|) / 2`` as pytorch-grad-cam's ``sobel_cam`` — run through the same
pipeline as every method so that it gets the same targets, scores and post-processing, but its
map depends on the input alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import BaseCAM, Context

__all__ = ["SobelCAM", "sobel_edges"]

_LUMA = (0.299, 0.587, 0.114)


def sobel_edges(x: torch.Tensor) -> torch.Tensor:
    """B×3×H×W images → B×H×W Sobel edge magnitudes ``(|G_x| + |G_y|) / 2`` of their luminance
    (reflected borders, 3×3 kernels)."""
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
    gray = torch.einsum("bchw,c->bhw", x[:, :3], luma)[:, None] if x.shape[1] >= 3 else x[:, :1]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([kx, kx.t()])[:, None]  # 2×1×3×3
    g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="reflect"), kernels)
    return 0.5 * g.abs().sum(dim=1)


class SobelCAM(BaseCAM):
    """A model-independent control: :func:`sobel_edges` of the input, whatever the model, layer
    or target::

        Y = 0.299 X_R + 0.587 X_G + 0.114 X_B,    L = (|G_x ∗ Y| + |G_y ∗ Y|) / 2,

    G_x, G_y the 3×3 Sobel kernels. It is no CAM of any paper: it is the edge detector that
    Adebayo et al. (NeurIPS 2018) showed some saliency maps resemble, and it must *fail* the
    model-randomisation check (:mod:`camlab.sanity`).

    Examples:
        >>> cam = camlab.methods.SobelCAM(clf, clf.target_layer)
        >>> torch.equal(cam(x).heatmaps, cam(x, targets=1).heatmaps)  # blind to the class
        True
    """

    name = "sobel"

    def compute(self, ctx: Context) -> torch.Tensor:
        return sobel_edges(ctx.x.float()).to(ctx.activations.dtype)
