"""Interactive Cluster-CAM: sliders for Q, K and α and a clustering dropdown, with caching.

:class:`ClusterExplorer` holds one image's activations (one forward pass, at construction), the
spectral decomposition of its feature maps (computed once per graph setting) and the score of
every cluster it has already masked. Moving K or the clustering method re-clusters without a
forward pass of the image; only clusters not seen before are scored (Q masked passes at most);
moving α costs nothing. :meth:`ClusterExplorer.widget` wraps it in ipywidgets; the callbacks are
plain methods, so tests drive them without a browser.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .clustering import kmeans, spectral_decomposition, spectral_labels
from .explanation import Explanation
from .layers import capture
from .masking import score_masked
from .methods.base import check_input, resolve_targets
from .methods.cluster import CLUSTERINGS, DEFAULTS, ClusterCAM

__all__ = ["ClusterExplorer"]


class ClusterExplorer:
    """Cluster-CAM for one image, recomputed cheaply as Q, K, α and the clustering change."""

    def __init__(self, module: nn.Module, x: torch.Tensor, target_layer, target: int | None = None, n_clusters: int = DEFAULTS["n_clusters"], n_eigvecs: int = DEFAULTS["n_eigvecs"], alpha: float = DEFAULTS["alpha"], clustering: str = DEFAULTS["clustering"], seed: int = 0, **spectral: Any):
        x = check_input(x)
        if x.shape[0] != 1:
            raise ValueError(f"ClusterExplorer explains one image at a time; got a batch of {x.shape[0]}")
        self.method = ClusterCAM(module, target_layer, n_clusters=n_clusters, n_eigvecs=n_eigvecs, alpha=alpha, clustering=clustering, seed=seed, **spectral)
        self.module = module
        self.x = x.to(self.method.device)
        with torch.no_grad(), capture(module, self.method.layer) as cap:
            logits = module(self.x)
        self.activations = cap.activations[0]
        self.logits = logits
        self.target = resolve_targets(target, logits)
        self.image_forwards = 1  # forward passes of the unmasked image
        self.masked_forwards = 0  # masked images scored so far
        self._decomposition = None
        self._scores: dict[bytes, float] = {}
        self.method.check_layer(self.activations.shape[0])
        self.state: dict[str, Any] = {}
        self.update()

    # --- computation ------------------------------------------------------------------------

    def _labels(self) -> torch.Tensor:
        m = self.method
        rows = self.activations.flatten(1).float()
        if m.clustering == "kmeans":
            return kmeans(rows, m.n_clusters, seed=m.seed).labels
        if self._decomposition is None:
            self._decomposition = spectral_decomposition(rows, m.laplacian, m.adjacency, m.sigma, m.kappa, m.tau)
        return spectral_labels(self._decomposition, m.n_clusters, m.n_eigvecs, m.seed).labels

    def _cluster_scores(self, labels: torch.Tensor, reps: torch.Tensor) -> torch.Tensor:
        keys = [(labels == q).cpu().numpy().tobytes() for q in range(reps.shape[0])]
        new = [q for q, k in enumerate(keys) if k not in self._scores]
        if new:
            owner = torch.zeros(len(new), dtype=torch.long, device=self.x.device)
            s = score_masked(self.module, self.x, reps[new], owner, self.target, baseline=self.method.baseline, score=self.method.score, batch_size=len(new))
            self._scores.update({keys[q]: float(v) for q, v in zip(new, s)})
            self.masked_forwards += len(new)
        return torch.tensor([self._scores[k] for k in keys], device=self.x.device)

    def update(self, **changes: Any) -> Explanation:
        """Change any of ``n_clusters``, ``n_eigvecs``, ``alpha``, ``clustering`` and recompute."""
        m = self.method
        for name, value in changes.items():
            if name not in ("n_clusters", "n_eigvecs", "alpha", "clustering"):
                raise ValueError(f"cannot change {name!r}; use n_clusters, n_eigvecs, alpha or clustering")
        fresh = ClusterCAM(self.module, m.layer_name, **{**{k: getattr(m, k) for k in ("n_clusters", "n_eigvecs", "alpha", "clustering", "laplacian", "adjacency", "sigma", "kappa", "tau", "score", "baseline", "seed")}, **changes})
        fresh.check_layer(self.activations.shape[0])
        self.method = fresh
        labels = self._labels()
        reps = ClusterCAM.representatives(self.activations, labels, fresh.n_clusters)
        scores = self._cluster_scores(labels, reps)
        heat, base, scissors = ClusterCAM.couple(reps[None], scores[None], fresh.alpha, tuple(self.x.shape[-2:]))
        heat = fresh.postprocess(heat, tuple(self.x.shape[-2:]))
        self.explanation = Explanation(
            heatmaps=heat.cpu(),
            targets=self.target.cpu(),
            scores=self.logits.softmax(1).gather(1, self.target[:, None])[:, 0].cpu(),
            n_forward=self.image_forwards + self.masked_forwards,
            seconds=0.0,
            method=fresh.name,
            layer=fresh.layer_name,
            params=fresh.params(),
            extras=dict(labels=labels[None].cpu(), cluster_maps=reps[None].cpu(), cluster_scores=scores[None].cpu(), base=base.cpu(), scissors=scissors.cpu()),
        )
        self.state = {k: getattr(fresh, k) for k in ("n_clusters", "n_eigvecs", "alpha", "clustering")}
        return self.explanation

    # --- display ----------------------------------------------------------------------------

    def figure(self, image, categories=None):
        from . import plot

        return plot.cluster_steps(image, self.explanation, categories=categories)

    def widget(self, image, categories=None, q_range=(2, 12), k_range=(1, 10)):
        """Sliders for Q, K, α and a clustering dropdown, redrawing :meth:`figure` into an output."""
        import ipywidgets as W
        import matplotlib.pyplot as plt
        from IPython.display import display

        s = self.state
        self.controls = {
            "n_clusters": W.IntSlider(value=s["n_clusters"], min=q_range[0], max=q_range[1], description="Q"),
            "n_eigvecs": W.IntSlider(value=s["n_eigvecs"], min=k_range[0], max=k_range[1], description="K"),
            "alpha": W.FloatSlider(value=s["alpha"], min=0.0, max=1.0, step=0.05, description="α"),
            "clustering": W.Dropdown(options=list(CLUSTERINGS), value=s["clustering"], description="clustering"),
        }
        out = W.Output()
        status = W.Label()

        def redraw(change=None):
            if change is not None:
                self.update(**{name: c.value for name, c in self.controls.items()})
            with out:
                out.clear_output(wait=True)
                fig = self.figure(image, categories)
                display(fig)
                plt.close(fig)
            status.value = f"forward passes so far: 1 of the image + {self.masked_forwards} masked"

        for c in self.controls.values():
            c.observe(redraw, names="value")
        redraw()
        return W.VBox([W.HBox(list(self.controls.values())[:2]), W.HBox(list(self.controls.values())[2:]), status, out])
