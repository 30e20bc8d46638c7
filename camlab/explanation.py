"""The one result type that every CAM method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Explanation"]


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
        extras: method-specific intermediates (e.g. cluster labels), kept on the CPU.
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

    def __getattr__(self, name: str) -> Any:
        # method-specific intermediates read as attributes: exp.labels, exp.cluster_maps, …
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        raise AttributeError(f"{type(self).__name__} of {self.__dict__.get('method') or 'this method'} has no {name!r}; it has {sorted(extras) or 'no extras'}")

    def __len__(self) -> int:
        return int(self.heatmaps.shape[0])

    def numpy(self):
        """The heatmaps as a float32 numpy array B×H×W."""
        return self.heatmaps.detach().cpu().numpy()
