"""Interactive Cluster-CAM: menus for the image and the target class, sliders for Q, K and α,
menus for the clustering and the coupling.

:class:`ClusterExplorer` holds, for each image it was given, one forward pass (made the first time
the image is shown) and, for each target class it has explained on that image, one
:class:`~camlab.methods.cluster.ClusterState`. What each control costs:

- **α or the coupling**: nothing — the fitted clusters are re-coupled (Feng et al. 2023, eq 22);
- **Q, K or the clustering**: no pass of the image; the state is fitted again on the same forward
  pass, the spectral decomposition and every cluster score already measured reused, so only
  clusters never scored cost a masked pass (eq 18–19);
- **the target class**: no pass of the image either (the activations do not depend on the
  class), but every cluster score is the target's softmax probability on a masked image (eq 19),
  so a new target is a refit with new scores — Q masked passes; a target seen before costs
  nothing;
- **the image**: one forward pass the first time, plus Q masked passes.

:meth:`ClusterExplorer.widget` wraps it in ipywidgets (the sliders act when released, not on
every step of a drag); its callbacks are plain methods, so tests drive them without a browser.

>>> ex = ClusterExplorer(clf, [x_photo, x_composite], "bn2", names=["photo", "two dogs"])  # doctest: +SKIP
>>> ex.update(image=1); ex.update(target=ex.classes()[1][0])  # the composite, its second class   # doctest: +SKIP
>>> ex.image_forwards, ex.masked_forwards  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from ..core.explanation import Explanation
from ..core.progress import HEADLESS, headless
from ..methods.base import check_input, resolve_targets
from ..methods.cluster import CLUSTERINGS, COUPLINGS, ClusterCAM, ClusterState

__all__ = ["ClusterExplorer", "HEADLESS", "headless", "target_caption"]

# HEADLESS (CAMLAB_HEADLESS) is set by the project's own notebook runs — `python -m camlab.book
# run`, `make test`'s nbval — where no front end draws widgets: there the explorer skips them.


CONTROLS = ("image", "target", "n_clusters", "n_eigvecs", "alpha", "clustering", "coupling")
SLIDERS = ("n_clusters", "n_eigvecs", "alpha")


def target_caption(
    probs: torch.Tensor, target: int, categories: Sequence[str] | None = None, name: str | None = None, sep: str = "; "
) -> str:
    """What a figure of an explanation should say about the class it explains: the target, its
    softmax probability and whether it is the model's top class — when it is not, the top class
    and its probability.

    Args:
        probs: the softmax probabilities of one image over the classes (C,).
        target: the explained class.
        categories: class names (``None``: ``class <index>``).
        name: the image's name, put first.
        sep: between the target and the prediction (a line break for a figure's title).

    >>> target_caption(torch.tensor([0.1, 0.6, 0.3]), 2, ["cat", "dog", "fox"], "photo")
    'photo: target fox (p = 0.30); the model predicts dog (p = 0.60)'
    >>> target_caption(torch.tensor([0.1, 0.6, 0.3]), 1, ["cat", "dog", "fox"])
    'target dog (p = 0.60, top-1)'
    """
    probs = torch.as_tensor(probs).detach().flatten().cpu()
    label = (lambda c: categories[c]) if categories is not None else (lambda c: f"class {c}")
    top = int(probs.argmax())
    if top == int(target):
        text = f"target {label(top)} (p = {float(probs[top]):.2f}, top-1)"
    else:
        text = (
            f"target {label(int(target))} (p = {float(probs[int(target)]):.2f}){sep}"
            f"the model predicts {label(top)} (p = {float(probs[top]):.2f})"
        )
    return f"{name}: {text}" if name else text


def _pick(images: Any, index: int, count: int):
    """The display image of image ``index`` from what :meth:`ClusterExplorer.figure` was given:
    one image (when the explorer holds one), or one per image (a list, or a B×3×H×W tensor)."""
    if isinstance(images, torch.Tensor) and images.dim() == 4 or isinstance(images, (list, tuple)):
        if len(images) != count:
            raise ValueError(f"{len(images)} display images for the explorer's {count} images")
        return images[index]
    if count != 1:
        raise ValueError(f"the explorer holds {count} images: give one display image per image (a list)")
    return images


class ClusterExplorer:
    """Cluster-CAM for a few images, recomputed cheaply as the image, the target class, Q, K, α,
    the clustering and the coupling change.

    Args:
        module: the classifier: a :class:`~camlab.Classifier` (passes on its folded twin) or an
            ``nn.Module`` (run as it is), as for every method.
        x: the images to choose among: a B×3×H×W batch, or a list of 1×3×H×W (or 3×H×W) tensors
            that may differ in size (e.g. a photo and a two-tile composite).
        target_layer: the layer whose maps are clustered.
        target: the class explained on the first image (``None``: the model's top class).
        names: a name per image for the image menu (default ``image 0``, ``image 1``, …).
        top_k: how many of each image's most probable classes the target menu offers.
        **settings: :class:`~camlab.ClusterCAM`'s keyword arguments.
    """

    def __init__(
        self,
        module: Any,
        x: torch.Tensor | Sequence[torch.Tensor],
        target_layer,
        target: int | None = None,
        names: Sequence[str] | None = None,
        top_k: int = 5,
        **settings: Any,
    ):
        images = list(x) if isinstance(x, (list, tuple)) else [x[i : i + 1] for i in range(check_input(x).shape[0])]
        if not images:
            raise ValueError("ClusterExplorer needs at least one image")
        self.images = [
            check_input(im.unsqueeze(0) if isinstance(im, torch.Tensor) and im.dim() == 3 else im) for im in images
        ]
        for i, im in enumerate(self.images):
            if im.shape[0] != 1:
                raise ValueError(f"image {i} is a batch of {im.shape[0]}: give one 1×3×H×W tensor per image")
        self.names = [f"image {i}" for i in range(len(self.images))] if names is None else [str(n) for n in names]
        if len(self.names) != len(self.images):
            raise ValueError(f"{len(self.names)} names for {len(self.images)} images")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an integer ≥ 1, got {top_k!r}")
        self.top_k = top_k
        self.method = ClusterCAM(module, target_layer, **settings)
        self.index, self.target = 0, target
        self._passes: dict[int, ClusterState] = {}  # image → the state whose forward pass it was
        self._fits: dict[tuple[int, int], ClusterState] = {}  # (image, target) → its present fit
        self.update()

    # --- what has been computed -----------------------------------------------------------------

    @property
    def image_forwards(self) -> int:
        """Passes of unmasked images so far: one per image shown, whatever was changed since."""
        return sum(s.image_forwards for s in self._passes.values())

    @property
    def masked_forwards(self) -> int:
        """Masked images scored so far, over every image and target."""
        caches = []  # fits on one forward pass share one cache of scores: count each cache once
        for s in self._fits.values():
            if not any(c is s.cache for c in caches):
                caches.append(s.cache)
        return sum(c.masked_forwards for c in caches)

    @property
    def settings(self) -> dict[str, Any]:
        """The present value of every control."""
        return {
            "image": self.index,
            "target": self.target,
            **{k: getattr(self.method.settings, k) for k in CONTROLS[2:]},
        }

    def probabilities(self, index: int | None = None) -> torch.Tensor:
        """The softmax probabilities (C,) of image ``index`` (the present one by default), from its
        forward pass (made now if the image was never shown)."""
        return self._pass(self.index if index is None else index).context.logits[0].softmax(0).cpu()

    def classes(self, index: int | None = None) -> list[tuple[int, float]]:
        """The target menu of image ``index``: its ``top_k`` most probable classes as
        ``(class, probability)``, most probable first, and the present target if it is not one."""
        index = self.index if index is None else index
        probs = self.probabilities(index)
        top = probs.topk(min(self.top_k, probs.numel()))
        out = [(int(c), float(p)) for p, c in zip(top.values, top.indices, strict=True)]
        if index == self.index and self.target is not None and self.target not in {c for c, _ in out}:
            out.append((self.target, float(probs[self.target])))
        return out

    # --- the one entry point -------------------------------------------------------------------

    def update(self, **changes: Any) -> Explanation:
        """Change any of ``image``, ``target`` (a class index; ``None`` for the model's top
        class), ``n_clusters``, ``n_eigvecs``, ``alpha``, ``clustering``, ``coupling`` and
        recompute what they change (see the module's docstring for the cost of each). A new
        image without a ``target`` is explained for its top class."""
        bad = [name for name in changes if name not in CONTROLS]
        if bad:
            raise ValueError(f"cannot change {bad[0]!r}; use {', '.join(CONTROLS)}")
        index = changes.pop("image", self.index)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.images):
            raise ValueError(f"image must be an index in 0 … {len(self.images) - 1}, got {index!r}")
        target = changes.pop("target") if "target" in changes else (self.target if index == self.index else None)
        method = self.method.replace(**changes)  # validates the settings before anything changes
        base = self._pass(index, method, target)
        target = int(resolve_targets(target, base.context.logits)[0])
        self.method, self.index, self.target = method, index, target
        self.fitted = self._fit(index, target)
        self.explanation = method.couple(self.fitted)
        return self.explanation

    def _pass(self, index: int, method: ClusterCAM | None = None, target: int | None = None) -> ClusterState:
        """The state holding image ``index``'s forward pass: the first time, one pass and Q masked
        ones for ``target`` (``None``: the top class)."""
        if index not in self._passes:
            method = method or self.method
            state = method.fit(self.images[index], None if target is None else [target])
            self._passes[index] = state
            self._fits[(index, int(state.context.targets[0]))] = state
        return self._passes[index]

    def _fit(self, index: int, target: int) -> ClusterState:
        """The state of (image, target) fitted with the present clustering settings: a new target
        is the image's forward pass with that target and a new score cache (the scores of eq 19
        are the target's), so it costs masked passes only."""
        key = (index, target)
        state = self._fits.get(key)
        if state is None:
            base = self._passes[index]
            ctx = replace(base.context, targets=torch.tensor([target], device=base.context.targets.device))
            state = self.method.fit(replace(base, context=ctx, cache=type(base.cache)()))
        elif state.params != self.method.fit_params():
            state = self.method.fit(state)
        self._fits[key] = state
        return state

    # --- display -------------------------------------------------------------------------------

    def caption(self, categories: Sequence[str] | None = None) -> str:
        """The present image, target and what the model predicts (:func:`target_caption`)."""
        return target_caption(self.probabilities(), self.target, categories, self.names[self.index])

    def readout(self, categories: Sequence[str] | None = None) -> str:
        """One line: the target and the base and scissors clusters with their scores (eq 20–21)."""
        e = self.explanation
        b, s = int(e.base[0]), int(e.scissors[0])
        y = e.cluster_scores[0]
        name = categories[self.target] if categories is not None else f"class {self.target}"
        return (
            f"target {name} (p = {float(e.scores[0]):.3f}): base = cluster {b} (y = {float(y[b]):.3f}), "
            f"scissors = cluster {s} (y = {float(y[s]):.3f})"
        )

    def figure(self, images, categories: Sequence[str] | None = None):
        """:func:`camlab.plot.cluster_steps` of the present image and target. ``images``: the
        display image (one explorer image) or one per image, in the explorer's order."""
        from . import plot

        fig = plot.cluster_steps(_pick(images, self.index, len(self.images)), self.explanation, categories=categories)
        fig.suptitle(self.caption(categories), fontsize=10)
        return fig

    def widget(self, images, categories: Sequence[str] | None = None, q_range=(2, 12), k_range=(1, 10)):
        """Menus for the image and the target class (the image's ``top_k`` classes), sliders for
        Q, K, α (acting when released: ``continuous_update=False``) and menus for the clustering
        and the coupling, redrawing :meth:`figure` into an output; a status line counts the
        forward passes. ``images`` as for :meth:`figure`.

        In a headless run (:func:`headless`) no widget is made and ``None`` is returned: widget
        comms with no front end to answer them can stall the notebook runner for good
        (jupyter/nbclient#312, jupyter/nbconvert#1921); call :meth:`figure` for a static figure.
        """
        if headless():
            print("the sliders need a live notebook (this copy was run without one); the next cell draws the figure")
            return None
        import ipywidgets as W
        import matplotlib.pyplot as plt
        from IPython.display import display

        _pick(images, self.index, len(self.images))  # the display images match the explorer's
        s = self.settings
        self.controls = {
            "image": W.Dropdown(
                options=[(n, i) for i, n in enumerate(self.names)], value=s["image"], description="image"
            ),
            "target": W.Dropdown(options=self._target_options(categories), value=s["target"], description="target"),
            "n_clusters": W.IntSlider(
                value=s["n_clusters"], min=q_range[0], max=q_range[1], description="Q", continuous_update=False
            ),
            "n_eigvecs": W.IntSlider(
                value=s["n_eigvecs"], min=k_range[0], max=k_range[1], description="K", continuous_update=False
            ),
            "alpha": W.FloatSlider(
                value=s["alpha"], min=0.0, max=1.0, step=0.05, description="α", continuous_update=False
            ),
            "clustering": W.Dropdown(options=list(CLUSTERINGS), value=s["clustering"], description="clustering"),
            "coupling": W.Dropdown(options=list(COUPLINGS), value=s["coupling"], description="coupling"),
        }
        out = W.Output()
        status, readout = W.Label(), W.Label()
        self._syncing = False

        def redraw(change=None):
            if self._syncing:  # the target menu being refilled for a new image
                return
            if change is not None:
                values = {name: c.value for name, c in self.controls.items()}
                if values["image"] != self.index:
                    values.pop("target")  # a new image: its top class
                self.update(**values)
                self._syncing = True
                try:  # the target menu offers the present image's classes
                    self.controls["target"].options = self._target_options(categories)
                    self.controls["target"].value = self.target
                finally:
                    self._syncing = False
            with out:
                out.clear_output(wait=True)
                fig = self.figure(images, categories)
                display(fig)
                plt.close(fig)
            self.controls["n_eigvecs"].disabled = self.method.settings.clustering != "spectral"  # K is spectral's only
            self.controls["alpha"].disabled = (
                self.method.settings.coupling == "weighted"
            )  # the weighted coupling has no α
            readout.value = self.readout(categories)
            status.value = f"forward passes so far: {self.image_forwards} of the images + {self.masked_forwards} masked"

        for c in self.controls.values():
            c.observe(redraw, names="value")
        redraw()
        c = self.controls
        return W.VBox(
            [
                W.HBox([c["image"], c["target"]]),
                W.HBox([c["n_clusters"], c["n_eigvecs"], c["alpha"]]),
                W.HBox([c["clustering"], c["coupling"]]),
                readout,
                status,
                out,
            ]
        )

    def _target_options(self, categories: Sequence[str] | None) -> list[tuple[str, int]]:
        label = (lambda c: categories[c]) if categories is not None else (lambda c: f"class {c}")
        return [(f"{label(c)} (p = {p:.2f})", c) for c, p in self.classes()]
