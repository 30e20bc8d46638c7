"""Chapter 08, sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018):
the committed run of :mod:`camlab.evaluation.sanity` read once (:func:`load`), the figures the
chapter draws (:func:`map_grid`, :func:`cascade_panels`, :func:`independent_heatmap`), its tables
(:func:`step_means`, :func:`full_randomisation_table`) and its verdict (:func:`verdict`).

A method *passes* the cascading check when the mean Spearman correlation of its map with the
trained model's map, with every block re-initialised, lies below :data:`THRESHOLD` with its whole
95 % interval — a threshold this workbook states (Adebayo et al. judge the curves by eye). A map
that is constant ("flat") ranks nothing and has ρ = 0 by definition; the verdict leaves flat maps
out, so a method whose randomised maps are all flat has no value left and is not separated.

>>> run = load("benchmarks/results")  # doctest: +SKIP
>>> cascade_panels(run)  # doctest: +SKIP
>>> verdict("benchmarks/results")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ...evaluation.stats import holm, mean_interval, paired_difference
from ..plot import heat_colorbar, overlay
from ..verdict import Claim, Verdict, distinct_methods, mean_claim, paired_claim
from ..verdict import verdict as make_verdict
from .table1 import name

__all__ = [
    "THRESHOLD",
    "SanityRun",
    "load",
    "short_block",
    "step_means",
    "map_grid",
    "cascade_panels",
    "independent_heatmap",
    "flat_shares",
    "zeroed_activations",
    "full_randomisation_table",
    "claims",
    "verdict",
]

THRESHOLD = 0.5  # the workbook's pass line for ρ at full randomisation (the whole 95 % interval below it)

_SHORT = {"": "none", "classifier": "clf", "conv_head": "head", "conv_stem": "stem"}


def short_block(block: str) -> str:
    """A block's name as the figures' axes print it: ``blocks.6`` → ``b6``, ``classifier`` → ``clf``."""
    return _SHORT.get(block, block.replace("blocks.", "b"))


def _flat(r: Mapping[str, Any]) -> bool:
    return str(r["constant"]) == "True"


@dataclass
class SanityRun:
    """A committed sanity-check run: the randomisation ``rows`` (``mode`` cascading or
    independent), the random-logit rows ``logit``, the methods whose maps differ (``methods``, in
    the rows' order) and, for each, the methods whose maps are identical to it here (``twins``)."""

    rows: list[dict[str, Any]]
    logit: list[dict[str, Any]]
    methods: list[str]
    twins: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len({r["image"] for r in self.rows if r["mode"] == "cascading"})

    @property
    def full_step(self) -> int:
        """The step at which every block is random."""
        return max(int(r["step"]) for r in self.rows)

    @property
    def blocks(self) -> list[str]:
        """The block re-initialised at each step, step 0 (``""``, the trained model) first."""
        by = {int(r["step"]): str(r["block"]) for r in self.rows}
        return [by[s] for s in sorted(by)]

    def named(self, method: str) -> str:
        """``method``'s name for a reader (:func:`camlab.book.chapters.table1.name`) with its
        identical twins in parentheses, as tables and titles print it."""
        twins = self.twins.get(method, [])
        return name(method) + (f" (= {', '.join(map(name, twins))})" if twins else "")

    def at(self, method: str, mode: str, step: int) -> list[dict[str, Any]]:
        """The rows of ``method`` at ``step`` of ``mode``."""
        return [r for r in self.rows if r["method"] == method and r["mode"] == mode and int(r["step"]) == step]


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def load(committed: str | Path, model: str = "efficientnet_lite0") -> SanityRun:
    """The committed run ``sanity_<model>.csv`` and ``random_logit_<model>.csv`` of ``committed``.
    Methods whose maps are the same as an earlier method's (every similarity within 1e-3 at every
    step of both modes and every image: at ``bn2`` CAM, XGrad-CAM and HiResCAM are Grad-CAM) are
    kept once, the others named as its twins.

    Raises:
        FileNotFoundError: either CSV is missing.
        ValueError: a method lacks a check on some image of the run.
    """
    rows = _read(Path(committed) / f"sanity_{model}.csv")
    logit = _read(Path(committed) / f"random_logit_{model}.csv")
    images = {r["image"] for r in rows} | {r["image"] for r in logit}
    for m in dict.fromkeys(r["method"] for r in rows):
        for mode in ("cascading", "independent"):
            have = {r["image"] for r in rows if r["method"] == m and r["mode"] == mode}
            if have != images:
                raise ValueError(f"{m} {mode}: {len(have)} of {len(images)} images in the run")
    keyed = [{**r, "image": f"{r['mode']}/{r['step']}/{r['image']}"} for r in rows]
    kept, same = distinct_methods(keyed, ["spearman", "ssim", "hog"], atol=1e-3)
    twins = {k: [a for a, b in same.items() if b == k] for k in kept}
    return SanityRun(rows, logit, kept, twins)


def step_means(live: Mapping[str, Sequence[Mapping[str, Any]]], blocks: Sequence[str]) -> str:
    """The live run as text: one line per method, its mean Spearman ρ to the trained map at each
    step (``live`` maps a method to its :func:`camlab.sanity.model_randomization` rows)."""
    head = f"{'method':16s}" + "".join(f"{short_block(b):>6s}" for b in ["", *blocks])
    lines = [head]
    for m, rows in live.items():
        means = [np.mean([r["spearman"] for r in rows if r["step"] == k]) for k in range(len(blocks) + 1)]
        lines.append(f"{name(m):16s}" + "".join(f"{v:6.2f}" for v in means))
    return "\n".join(lines)


def map_grid(
    live: Mapping[str, Sequence[Mapping[str, Any]]],
    image: Any,
    blocks: Sequence[str],
    steps: Sequence[int] = (0, 1, 2, 3, 4, 6, 8, 12),
    title: str = "",
):
    """The maps of the first image under cascading randomisation: one row per method of ``live``
    (rows kept with ``keep_maps=True``), one column per step of ``steps`` (those past the last
    block dropped), ρ to the trained map in each title, one colour scale."""
    steps = [s for s in steps if s <= len(blocks)]
    fig, axes = plt.subplots(
        len(live), len(steps), figsize=(1.45 * len(steps) + 1.0, 1.55 * len(live)), squeeze=False, layout="constrained"
    )
    for i, (m, rows) in enumerate(live.items()):
        maps = {r["step"]: r for r in rows if r["image"] == 0}
        for j, s in enumerate(steps):
            r = maps[s]
            top = "trained" if s == 0 else f"to {short_block(blocks[s - 1])}"
            overlay(
                image,
                r["heatmap"],
                ax=axes[i, j],
                title=f"{top}, ρ={r['spearman']:.2f}" + (" flat" if r["constant"] else ""),
            )
            axes[i, j].title.set_fontsize(7)
        axes[i, 0].set_ylabel(name(m), fontsize=9)
    heat_colorbar(fig, axes, label="heatmap value")
    fig.suptitle(title, fontsize=10)
    return fig


def _curve(run: SanityRun, method: str, mode: str, measure: str = "spearman") -> tuple[np.ndarray, ...]:
    steps = range(run.full_step + 1)
    ivs = [mean_interval([float(r[measure]) for r in run.at(method, mode, s)]) for s in steps]
    flat = [np.mean([_flat(r) for r in run.at(method, mode, s)]) for s in steps]
    return tuple(np.array(v) for v in ([iv.mean for iv in ivs], [iv.lo for iv in ivs], [iv.hi for iv in ivs], flat))


def cascade_panels(run: SanityRun, reference: str = "gradcam", threshold: float = THRESHOLD, ncols: int = 4):
    """Small multiples of the cascading randomisation: one panel per distinct method, its mean
    Spearman ρ to the trained map per step with the 95 % band, the ``reference`` method's curve
    and band in grey behind it, the pass line at ``threshold``; a hollow marker where over half
    of the randomised maps are flat (ρ = 0 by definition there)."""
    methods = run.methods
    nrows = -(-(len(methods) + 1) // ncols)  # the first panel holds the legend
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.0 * ncols, 2.3 * nrows), sharex=True, sharey=True, layout="constrained"
    )
    axes = np.atleast_1d(axes).ravel()
    key, panels = axes[0], axes[1 : len(methods) + 1]
    x = np.arange(run.full_step + 1)
    ref = _curve(run, reference, "cascading")
    for ax, m in zip(panels, methods, strict=True):
        ax.axhspan(-1.05, threshold, color="tab:green", alpha=0.07, lw=0)
        ax.axhline(threshold, color="tab:green", ls="--", lw=1)
        if m != reference:
            ax.plot(x, ref[0], color="0.55", lw=1)
            ax.fill_between(x, ref[1], ref[2], color="0.55", alpha=0.2, lw=0)
        mean, lo, hi, flat = _curve(run, m, "cascading")
        color = "tab:purple" if m.startswith("clustercam") else "tab:blue"
        ax.fill_between(x, lo, hi, color=color, alpha=0.25, lw=0)
        ax.plot(x, mean, color=color, lw=2)
        ax.plot(x[flat <= 0.5], mean[flat <= 0.5], "o", color=color, ms=4)
        ax.plot(x[flat > 0.5], mean[flat > 0.5], "o", mfc="white", mec=color, ms=5)
        ax.set_title(run.named(m), fontsize=8)
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes[len(methods) + 1 :]:
        ax.axis("off")
    for ax in axes[len(methods) + 1 - ncols : len(methods) + 1]:
        ax.set_xticks(x, [short_block(b) for b in run.blocks], rotation=90, fontsize=7)
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("re-initialised down to", fontsize=8)
    axes[1].tick_params(labelleft=True)  # the first row's first panel is the key
    for ax in [axes[1], *axes[ncols::ncols]]:
        ax.set_ylabel("Spearman ρ to trained map", fontsize=8)
    handles = [
        plt.Line2D(
            [], [], color="tab:blue", lw=2, marker="o", ms=4, label="mean ρ over the images\n(band: 95 % interval)"
        ),
        plt.Line2D([], [], color="tab:purple", lw=2, marker="o", ms=4, label="the same, Cluster-CAM"),
        plt.Line2D(
            [], [], ls="", marker="o", mfc="white", mec="k", label="over half the maps flat\n(ρ = 0 by definition)"
        ),
        plt.Line2D([], [], color="0.55", lw=1, label=f"reference: {name(reference)}\n(band: 95 % interval)"),
        plt.Line2D([], [], color="tab:green", ls="--", label=f"pass line ρ = {threshold}\n(shaded: below it)"),
    ]
    key.axis("off")
    key.legend(handles=handles, loc="center", fontsize=7.5, frameon=False)
    fig.suptitle(
        f"Cascading randomisation, {run.n_images} images: one panel per method (twins in parentheses)", fontsize=10
    )
    return fig


def independent_heatmap(run: SanityRun):
    """The independent randomisation as a table of colours: one row per distinct method, one
    column per block re-initialised alone, the mean Spearman ρ to the trained map written in each
    cell; "flat" where over half of the randomised maps are constant (there ρ = 0 measures
    flatness, not similarity)."""
    steps = range(1, run.full_step + 1)
    mean = np.array(
        [[np.mean([float(r["spearman"]) for r in run.at(m, "independent", s)]) for s in steps] for m in run.methods]
    )
    flat = np.array([[np.mean([_flat(r) for r in run.at(m, "independent", s)]) for s in steps] for m in run.methods])
    fig, ax = plt.subplots(figsize=(9.5, 0.36 * len(run.methods) + 1.6), layout="constrained")
    im = ax.imshow(mean, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(mean):
        text = "flat" if flat[i, j] > 0.5 else f"{v:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if abs(v) > 0.6 else "black")
    ax.set_xticks(range(len(steps)), [short_block(b) for b in run.blocks[1:]], fontsize=8)
    ax.set_yticks(range(len(run.methods)), [name(m) for m in run.methods], fontsize=8)
    ax.set_xlabel("the one block re-initialised (the rest trained)")
    ax.set_ylabel("method")
    fig.colorbar(im, ax=ax, label="mean Spearman ρ to trained map", shrink=0.9)
    ax.set_title(f"Independent randomisation, {run.n_images} images: mean ρ per method and block", fontsize=10)
    return fig


def flat_shares(run: SanityRun, mode: str = "independent") -> dict[str, float]:
    """Per block re-initialised in ``mode``, the share of all randomised maps (every method, every
    image) that are flat."""
    out = {}
    for s, block in enumerate(run.blocks[1:], start=1):
        out[block] = float(np.mean([_flat(r) for r in run.rows if r["mode"] == mode and int(r["step"]) == s]))
    return out


def zeroed_activations(clf: Any, block: str, layer: str, x: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Why maps go flat with ``block`` alone re-initialised: the share of activations at ``layer``
    that are exactly 0 in the trained network and in a copy with ``block`` reset as the run resets
    it, and the share of the copy's channels constant in space (a map read from those is flat)."""
    from ...core.layers import capture

    net = copy.deepcopy(clf.module).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for mod in net.get_submodule(block).modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    acts = {}
    for tag, module in (("trained", clf.module), ("reset", net)):
        with torch.no_grad(), capture(module, layer) as cap:
            module(x)
        acts[tag] = cap.activations
    return {
        "zero_trained": float((acts["trained"] == 0).float().mean()),
        "zero_reset": float((acts["reset"] == 0).float().mean()),
        "constant_channels": float((acts["reset"].flatten(2).std(2) == 0).float().mean()),
    }


def _end(run: SanityRun, m: str) -> tuple[np.ndarray, np.ndarray]:
    rs = run.at(m, "cascading", run.full_step)
    return np.array([float(r["spearman"]) for r in rs]), np.array([_flat(r) for r in rs])


def _logit(run: SanityRun, m: str) -> dict[str, float]:
    return {r["image"]: float(r["spearman"]) for r in run.logit if r["method"] == m}


def full_randomisation_table(run: SanityRun) -> str:
    """Every distinct method at full cascading randomisation, as text: mean ρ over all maps (a flat
    one counted as 0) and over the maps that are not flat, mean ``|ρ|``, SSIM and HOG, the share of
    flat maps, and the random-logit ρ (the maps of the predicted and a random class); each mean
    with its 95 % interval."""

    def iv(values) -> str:
        i = mean_interval(values)
        return "—" if i.n == 0 else f"{i.mean:.2f}" if i.n < 2 else f"{i.mean:.2f} [{i.lo:.2f}, {i.hi:.2f}]"

    head = ["method", "ρ", "ρ, not flat", "|ρ|", "SSIM", "HOG", "flat", "random logit ρ"]
    lines = []
    for m in run.methods:
        rs = run.at(m, "cascading", run.full_step)
        rho, flat = _end(run, m)
        ssim, hog = ([float(r[k]) for r in rs] for k in ("ssim", "hog"))
        lines.append(
            [
                run.named(m),
                iv(rho),
                iv(rho[~flat]),
                iv(np.abs(rho)),
                iv(ssim),
                iv(hog),
                f"{100 * flat.mean():.0f} %",
                iv(list(_logit(run, m).values())),
            ]
        )
    widths = [max(len(r[k]) for r in [head, *lines]) for k in range(len(head))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([fmt(head), *map(fmt, lines)])


def claims(run: SanityRun, threshold: float = THRESHOLD) -> list[Claim]:
    """The chapter's claims: per distinct method, that its map changes under full cascading
    randomisation (mean ρ of the maps that are not flat below ``threshold``); that the maps of
    Cluster-CAM and EigenCAM change in more than sign (mean ``|ρ|`` below ``threshold``); and that
    Cluster-CAM's maps change more with the class than Grad-CAM's (random logit, paired)."""
    out = []
    for m in run.methods:
        rho, flat = _end(run, m)
        judged = rho[~flat] if flat.mean() <= 0.5 else rho[:0]  # mostly flat: nothing left to judge
        left = (
            f"flat maps left out: {100 * flat.mean():.0f} %"
            if flat.mean() <= 0.5
            else f"{100 * flat.mean():.0f} % of maps flat: not judged"
        )
        text = f"{run.named(m)}: ρ < {threshold}, all blocks random ({left})"
        out.append(mean_claim(m, text, judged, threshold, expect=-1))
    for m in ("clustercam", "eigencam"):
        rho, _ = _end(run, m)
        text = f"{name(m)}: |ρ| < {threshold} too (more than a sign flip)"
        out.append(mean_claim(f"|ρ| {m}", text, np.abs(rho), threshold, -1))
    c, g = _logit(run, "clustercam"), _logit(run, "gradcam")
    images = [i for i in c if i in g]
    out.append(
        paired_claim(
            "logit",
            "random logit: Cluster-CAM's map changes more with the class than Grad-CAM's (ρ difference, paired)",
            [c[i] for i in images],
            [g[i] for i in images],
            expect=-1,
        )
    )
    return out


def verdict(committed: str | Path, model: str = "efficientnet_lite0", threshold: float = THRESHOLD) -> Verdict:
    """The chapter's verdict from the committed run: :func:`claims` as a table and five sentences
    checked against it. The per-method rows are one family; the sentence on Cluster-CAM gives its
    Holm-adjusted p (sign-flip test of ρ − ``threshold``) over that family."""
    run = load(committed, model)
    cs = claims(run, threshold)
    by = {c.label: c for c in cs}
    ends = {m: _end(run, m) for m in run.methods}
    flat = [m for m in run.methods if ends[m][1].mean() > 0.5]  # not judged: their p is NaN, outside the family
    judged = [m for m in run.methods if m not in flat]
    p = [
        paired_difference(ends[m][0][~ends[m][1]], np.full((~ends[m][1]).sum(), threshold)).p
        if m in judged
        else math.nan
        for m in run.methods
    ]
    p_cc = dict(zip(run.methods, holm(p), strict=True))["clustercam"]
    blind = [m for m in ("gradcampp", "layercam") if m in by]
    cc, paper, gc = (by[k].value for k in ("clustercam", "clustercam:coupling=paper", "gradcam"))
    notes = [
        (
            f"With all {run.full_step} blocks random, Cluster-CAM's map no longer ranks the pixels as the trained "
            f"one does (ρ {cc:.2f}; {paper:.2f} with the paper's coupling; Holm-adjusted p = {p_cc:.2g} over the "
            f"{len(judged)} methods judged), nor does Grad-CAM's ({gc:.2f}): reproduced.",
            {"clustercam": "reproduced", "gradcam": "reproduced", "clustercam:coupling=paper": "reproduced"},
        ),
        (
            "The Sobel edge detector keeps its map (ρ = 1), so its row is contradicted, as a control's must be.",
            {"sobel": "contradicted"},
        ),
        (
            f"Grad-CAM++ and LayerCAM keep much of theirs (ρ {by['gradcampp'].value:.2f}, interval across "
            f"{threshold}): not separated.",
            {m: "not separated" for m in blind},
        ),
        (
            f"{' and '.join([', '.join(map(name, flat[:-1])), name(flat[-1])])} leave no map to compare (over half "
            "of their randomised maps flat), so they are not separated.",
            {m: "not separated" for m in flat},
        ),
        (
            f"EigenCAM's low ρ comes from sign flips (|ρ| {by['|ρ| eigencam'].value:.2f}: not separated), while "
            f"Cluster-CAM's |ρ| ({by['|ρ| clustercam'].value:.2f}) and its larger change with the class than "
            f"Grad-CAM's (paired ρ difference {by['logit'].value:+.2f}) are reproduced.",
            {
                "eigencam": "reproduced",
                "|ρ| eigencam": "not separated",
                "|ρ| clustercam": "reproduced",
                "logit": "reproduced",
            },
        ),
    ]
    return make_verdict(cs, notes)
