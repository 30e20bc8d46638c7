"""The one result type that every CAM method returns, and Cluster-CAM's richer form of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Explanation", "ClusterExplanation"]


@dataclass
class Explanation:
    """Heatmaps for a batch of images, with what it cost to compute them.

    Attributes:
        heatmaps: float tensor B×H×W in [0, 1], on the CPU, at the input's resolution.
        targets: long tensor (B,) of the explained class indices.
        scores: softmax probability of each target on the clean input (B,).
        n_forward: images pushed through the model in total (a batch of B counts B).
        seconds: wall time of the call.
        method: registered name of the method that produced it.
        layer: dotted name of the target layer.
        params: the method's parameters, for the record.
        extras: method-specific intermediates by name (e.g. Score-CAM's ``channel_scores``), on the CPU.
        raw: the map before post-processing, B×h×w at the target layer's resolution — Σ_n w_n F_n
            (or the method's spatial map) before ReLU, upsampling and min–max scaling. Its values
            keep their size, so two classes or two images can be drawn on one colour scale.
    """

    heatmaps: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor
    n_forward: int
    seconds: float
    method: str = ""
    layer: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    raw: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.heatmaps.shape[0])

    def numpy(self):
        """The heatmaps as a float32 numpy array B×H×W."""
        return self.heatmaps.detach().cpu().numpy()

    @property
    def passes(self) -> tuple[int, int]:
        """``(full, partial)``: :attr:`n_forward` split into passes of the whole network and
        partial passes that run only the layers after the target layer (Ablation-CAM's ablated
        copies, counted in ``extras["tail_passes"]``), which cost a fraction of a full pass."""
        partial = int(self.extras.get("tail_passes", 0))
        return self.n_forward - partial, partial


@dataclass(kw_only=True)
class ClusterExplanation(Explanation):
    """What :class:`camlab.methods.ClusterCAM` returns: an :class:`Explanation` with the clusters
    behind the map (Feng et al. 2023, eq 18–21), all on the CPU.

    Attributes:
        labels: long B×N, the cluster of every channel of the target layer.
        cluster_maps: B×Q×h×w, the representative (mean) map of each cluster (eq 18).
        cluster_scores: B×Q, the score of the image masked by each cluster's map (eq 19).
        base: long (B,), the best-scoring cluster, the cognition base (eq 20).
        scissors: long (B,), the worst-scoring cluster, the cognition scissors (eq 21).
    """

    labels: torch.Tensor
    cluster_maps: torch.Tensor
    cluster_scores: torch.Tensor
    base: torch.Tensor
    scissors: torch.Tensor
