"""Interactive Cluster-CAM: sliders for Q, K and α, dropdowns for the clustering and the coupling.

:class:`ClusterExplorer` holds one :class:`~camlab.methods.cluster.ClusterState` of one image
(one forward pass, at construction). Moving Q, K or the clustering fits that state again — no
pass of the image, the spectral decomposition and every cluster score already measured reused,
so only clusters never seen cost a masked pass; moving α or the coupling only re-couples and
costs nothing. :meth:`ClusterExplorer.widget` wraps it in ipywidgets; the callbacks are plain
methods, so tests drive them without a browser.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .explanation import Explanation
from .methods.base import check_input
from .methods.cluster import CLUSTERINGS, COUPLINGS, ClusterCAM, ClusterState

__all__ = ["ClusterExplorer", "HEADLESS", "headless"]

# Set (to anything but "" or "0") by the project's own notebook runs — `python -m camlab.notebooks
# run`, `make test`'s nbval — where no front end draws widgets: there the explorer skips them.
HEADLESS = "CAMLAB_HEADLESS"


def headless() -> bool:
    """Whether this process runs notebooks with no front end (the ``CAMLAB_HEADLESS`` setting)."""
    return os.environ.get(HEADLESS, "") not in ("", "0")

CONTROLS = ("n_clusters", "n_eigvecs", "alpha", "clustering", "coupling")
_REFIT = ("n_clusters", "n_eigvecs", "clustering")  # what changes the clusters; α and the coupling do not


class ClusterExplorer:
    """Cluster-CAM for one image, recomputed cheaply as Q, K, α, the clustering and the coupling
    change. Keyword arguments other than ``target`` are :class:`~camlab.ClusterCAM`'s."""

    def __init__(self, module: nn.Module, x: torch.Tensor, target_layer, target: int | None = None, **settings: Any):
        x = check_input(x)
        if x.shape[0] != 1:
            raise ValueError(f"ClusterExplorer explains one image at a time; got a batch of {x.shape[0]}")
        self.method = ClusterCAM(module, target_layer, **settings)
        self.fitted: ClusterState = self.method.fit(x, None if target is None else [target])
        self.update()

    @property
    def image_forwards(self) -> int:
        return self.fitted.image_forwards

    @property
    def masked_forwards(self) -> int:
        return self.fitted.masked_forwards

    @property
    def settings(self) -> dict[str, Any]:
        """The present value of every control."""
        return {k: getattr(self.method, k) for k in CONTROLS}

    def update(self, **changes: Any) -> Explanation:
        """Change any of ``n_clusters``, ``n_eigvecs``, ``alpha``, ``clustering``, ``coupling``
        and recompute: a refit only when the clusters can change, then a re-coupling."""
        bad = [name for name in changes if name not in CONTROLS]
        if bad:
            raise ValueError(f"cannot change {bad[0]!r}; use {', '.join(CONTROLS)}")
        before = self.settings
        method = self.method.replace(**changes)
        if any(before[k] != getattr(method, k) for k in _REFIT):
            self.fitted = method.fit(self.fitted)
        self.method = method
        self.explanation = method.couple(self.fitted)
        return self.explanation

    # --- display ----------------------------------------------------------------------------

    def figure(self, image, categories=None):
        from . import plot

        return plot.cluster_steps(image, self.explanation, categories=categories)

    def widget(self, image, categories=None, q_range=(2, 12), k_range=(1, 10)):
        """Sliders for Q, K, α and dropdowns for the clustering and the coupling, redrawing
        :meth:`figure` into an output.

        In a headless run (:func:`headless`) no widget is made and ``None`` is returned: widget
        comms with no front end to answer them can stall the notebook runner for good
        (jupyter/nbclient#312, jupyter/nbconvert#1921); call :meth:`figure` for a static figure.
        """
        if headless():
            print(f"headless run ({HEADLESS} is set): the sliders are skipped; the next cell draws the figure")
            return None
        import ipywidgets as W
        import matplotlib.pyplot as plt
        from IPython.display import display

        s = self.settings
        self.controls = {
            "n_clusters": W.IntSlider(value=s["n_clusters"], min=q_range[0], max=q_range[1], description="Q"),
            "n_eigvecs": W.IntSlider(value=s["n_eigvecs"], min=k_range[0], max=k_range[1], description="K"),
            "alpha": W.FloatSlider(value=s["alpha"], min=0.0, max=1.0, step=0.05, description="α"),
            "clustering": W.Dropdown(options=list(CLUSTERINGS), value=s["clustering"], description="clustering"),
            "coupling": W.Dropdown(options=list(COUPLINGS), value=s["coupling"], description="coupling"),
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
            self.controls["n_eigvecs"].disabled = self.method.clustering != "spectral"  # K is spectral's only
            self.controls["alpha"].disabled = self.method.coupling == "weighted"  # the weighted coupling has no α
            status.value = f"forward passes so far: 1 of the image + {self.masked_forwards} masked"

        for c in self.controls.values():
            c.observe(redraw, names="value")
        redraw()
        c = self.controls
        return W.VBox([W.HBox([c["n_clusters"], c["n_eigvecs"], c["alpha"]]), W.HBox([c["clustering"], c["coupling"]]), status, out])
