"""Figures: a heatmap over its image, and a grid of images × methods.

Every notebook uses these two, so the workbook has one figure style.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from ..core.explanation import Explanation

__all__ = ["to_rgb_array", "overlay", "grid", "heat_colorbar", "cluster_steps", "similarity_curves"]


def to_rgb_array(image) -> np.ndarray:
    """A PIL image, an H×W×3 array or a 3×H×W tensor in [0, 1] → float H×W×3 array in [0, 1]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        arr = image.detach().cpu().float()
        if arr.dim() == 3 and arr.shape[0] in (1, 3):
            arr = arr.permute(1, 2, 0)
        arr = arr.numpy()
    else:
        arr = np.asarray(image, dtype=np.float32)
    if arr.max() > 1.0:
        arr = arr / 255.0
    if arr.ndim == 2 or arr.shape[-1] == 1:
        arr = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2)
    return np.clip(arr, 0.0, 1.0)


def _heat_array(heatmap) -> np.ndarray:
    if isinstance(heatmap, torch.Tensor):
        heatmap = heatmap.detach().cpu().float().numpy()
    return np.asarray(heatmap, dtype=np.float32).squeeze()


def overlay(image, heatmap, ax=None, alpha: float = 0.5, cmap: str = "jet", title: str | None = None):
    """Draw ``heatmap`` (H×W in [0, 1]) over ``image`` on ``ax`` (a new one if ``None``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    rgb = to_rgb_array(image)
    ax.imshow(rgb)
    if heatmap is not None:
        heat = _heat_array(heatmap)
        if heat.shape != rgb.shape[:2]:
            raise ValueError(f"heatmap {heat.shape} and image {rgb.shape[:2]} differ in size")
        ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def grid(
    images: Sequence,
    heatmaps: Mapping[str, torch.Tensor | Explanation | Sequence],
    row_titles: Sequence[str] | None = None,
    show_image: bool = True,
    size: float = 2.4,
    alpha: float = 0.5,
    colorbar: bool = True,
    cmap: str = "jet",
    colorbar_label: str = "heatmap (min–max scaled)",
):
    """A figure with one row per image and one column per method (plus the image itself).

    ``heatmaps`` maps a column title to a B×H×W tensor, an :class:`Explanation`, or a list of
    H×W maps, in the order of ``images``. Every map is drawn on the one scale [0, 1] (camlab's
    maps are min–max scaled; :func:`camlab.core.maps.common_scale` puts several classes on one),
    shown by a shared colour bar labelled ``colorbar_label``.
    """
    columns = {k: (v.heatmaps if isinstance(v, Explanation) else v) for k, v in heatmaps.items()}
    n_rows, n_cols = len(images), len(columns) + int(show_image)
    width = size * n_cols + (0.6 if colorbar else 0.0)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, size * n_rows), squeeze=False, layout="constrained")
    for r, image in enumerate(images):
        c = 0
        if show_image:
            overlay(image, None, ax=axes[r, 0], title=row_titles[r] if row_titles else None)
            c = 1
        for j, (title, maps) in enumerate(columns.items()):
            overlay(image, maps[r], ax=axes[r, c + j], alpha=alpha, cmap=cmap, title=title if r == 0 else None)
    if colorbar and columns:
        heat_colorbar(fig, axes[:, int(show_image) :], cmap=cmap, label=colorbar_label)
    return fig


def heat_colorbar(
    fig, axes, cmap: str = "jet", label: str = "heatmap (min–max scaled)", vmin: float = 0.0, vmax: float = 1.0
):
    """One colour bar for ``axes`` that share the scale [``vmin``, ``vmax``] of ``cmap``."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)
    bar = fig.colorbar(mappable, ax=np.asarray(axes).ravel().tolist(), shrink=0.9)
    bar.set_label(label, fontsize=8)  # small enough for a one-row figure's bar
    bar.ax.tick_params(labelsize=8)
    return bar


def cluster_steps(
    image, explanation: Explanation, index: int = 0, masked_images=None, categories=None, size: float = 1.9
):
    """Cluster-CAM step by step for one image of a Cluster-CAM :class:`Explanation`.

    Row 1: the Q representative (mean) maps over the image; row 2: the masked images with their
    scores — the cognition base framed green, the scissors red; the last column holds the image
    and the final heatmap. ``masked_images`` (Q×3×H×W in [0, 1]) defaults to the image times each
    upsampled, normalised map.
    """
    from ..core.maps import normalize_maps, upsample

    rgb = to_rgb_array(image)
    size_hw = rgb.shape[:2]
    reps = explanation.cluster_maps[index]
    scores = explanation.cluster_scores[index]
    base, scissors = int(explanation.base[index]), int(explanation.scissors[index])
    masks = normalize_maps(upsample(reps.float(), size_hw))
    if masked_images is None:
        masked_images = [rgb * masks[q].numpy()[:, :, None] for q in range(len(reps))]
    q_count = len(reps)
    fig, axes = plt.subplots(
        2,
        q_count + 1,
        figsize=(size * (q_count + 1) + 0.6, 2 * size * size_hw[0] / size_hw[1] + 0.6),  # no bands under wide images
        squeeze=False,
        layout="constrained",
    )
    counts = torch.bincount(explanation.labels[index], minlength=q_count)
    for q in range(q_count):
        overlay(rgb, masks[q], ax=axes[0, q], title=f"cluster {q} ({int(counts[q])} ch.)")
        overlay(to_rgb_array(masked_images[q]), None, ax=axes[1, q], title=f"score {float(scores[q]):.3f}")
        if q in (base, scissors):
            colour = "limegreen" if q == base else "red"
            for ax in (axes[0, q], axes[1, q]):
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(4)
            axes[1, q].set_title(
                f"{'base' if q == base else 'scissors'}: {float(scores[q]):.3f}", fontsize=9, color=colour
            )
    target = int(explanation.targets[index])
    label = categories[target] if categories is not None else f"class {target}"
    overlay(rgb, None, ax=axes[0, q_count], title=label)
    alpha, coupling = explanation.params.get("alpha"), explanation.params.get("coupling", "normalized")
    overlay(
        rgb,
        explanation.heatmaps[index],
        ax=axes[1, q_count],
        title=f"{coupling}" + ("" if alpha is None else f", α={alpha}"),
    )
    heat_colorbar(fig, axes[0, :q_count].tolist() + [axes[1, q_count]])
    return fig


def similarity_curves(
    rows: Sequence[Mapping], measure: str = "spearman", ax=None, title: str | None = None, joined: bool = True
):
    """Adebayo et al.'s Fig. 2/4 layout: for each method of the sanity-check ``rows`` (those of
    :func:`camlab.sanity.model_randomization` with a ``method`` column, e.g. from the committed
    CSV), the mean ``measure`` per randomisation step with its 95 % bootstrap interval; the
    x axis names the block re-initialised at each step (the untouched model first).

    ``joined=True`` draws a line through the steps and the intervals as a band (the cascading
    randomisation, a sequence); ``joined=False`` draws each step's mean as a marker with its
    interval as an error bar, the methods side by side (the independent randomisation, whose
    steps are separate conditions)."""
    from ..evaluation.stats import mean_interval

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    steps = sorted({int(r["step"]) for r in rows})
    blocks = {int(r["step"]): str(r["block"]) or "none" for r in rows}
    for i, m in enumerate(methods):
        ivs = [
            mean_interval([float(r[measure]) for r in rows if str(r["method"]) == m and int(r["step"]) == s])
            for s in steps
        ]
        mean = np.array([iv.mean for iv in ivs])
        lo, hi = np.array([iv.lo for iv in ivs]), np.array([iv.hi for iv in ivs])
        if joined:
            line = ax.plot(steps, mean, marker="o", ms=3, label=m)[0]
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        else:  # side by side within ±0.35 of the step
            shift = 0.7 * ((i + 0.5) / len(methods) - 0.5)
            ax.errorbar(
                np.array(steps) + shift, mean, yerr=[mean - lo, hi - mean], fmt="o", ms=3, lw=0.9, capsize=0, label=m
            )
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(steps, [blocks[s] for s in steps], rotation=60, fontsize=7)
    ax.set_xlabel(
        "re-initialised (cumulatively from the top)"
        if any("cascading" == str(r.get("mode", "cascading")) for r in rows)
        else "re-initialised"
    )
    ax.set_ylabel(f"{measure} to the trained model's map")
    ax.set_ylim(-1.05, 1.05)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return ax
