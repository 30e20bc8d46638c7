"""EigenCAM (Muhammad & Yeasin, IJCNN 2020): the first principal component of a layer's maps.

One forward pass and no gradient: the feature maps ``F`` (N×h×w) are read as h·w samples of N
channels, each channel centred over the positions, and projected on their first right singular
vector ``v₁``: ``L = ReLU(F̃ v₁)``. The map is not class-specific — it is the dominant structure of
the maps, whichever class is asked for — which makes it the closest cheap relative of
Cluster-CAM's gradient-free use of the maps' structure.

An SVD's sign is arbitrary (``F̃ v₁`` and ``−F̃ v₁`` are equally valid), so the projection is
flipped when its most negative value is larger in magnitude than its most positive one (Chung &
Ying 2025, eq 13), as pytorch-grad-cam's ``get_2d_projection_with_sign_correction`` does.
"""

from __future__ import annotations

import torch

from .base import BaseCAM, Context

__all__ = ["EigenCAM", "principal_projection"]


def principal_projection(acts: torch.Tensor) -> torch.Tensor:
    """B×N×h×w feature maps → B×h×w projections on their first principal component, sign
    corrected so that the larger-magnitude extreme is positive. A layer whose maps do not vary
    over positions projects to zeros."""
    b, n, h, w = acts.shape
    f = acts.flatten(2).transpose(1, 2).double()  # B×hw×N: positions are the samples
    f = f - f.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(f, full_matrices=False)
    proj = torch.einsum("bpn,bn->bp", f, vh[:, 0, :])
    flip = proj.amin(dim=1).abs() > proj.amax(dim=1).abs()
    proj = torch.where(flip[:, None], -proj, proj)
    return proj.view(b, h, w).to(acts.dtype)


class EigenCAM(BaseCAM):
    """EigenCAM (Muhammad & Yeasin, IJCNN 2020): the maps' first principal component,

        F̃ = F − mean over positions (h·w × N),    F̃ = U Σ Vᵀ,    L = ReLU(F̃ v₁),

    the centred maps projected on their first right singular vector, sign corrected
    (:func:`principal_projection`). One pass, no gradient, the same map for every target class.

    Examples:
        >>> cam = camlab.methods.EigenCAM(clf, "blocks.6")
        >>> top1, other = cam(x), cam(x, targets=1)
        >>> torch.equal(top1.heatmaps, other.heatmaps)  # not class-specific
        True
    """

    name = "eigencam"

    def compute(self, ctx: Context) -> torch.Tensor:
        return principal_projection(ctx.activations)
