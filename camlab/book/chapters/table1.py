"""Notebook 07: the metrics of Feng et al. (2023)'s Table 1 and their companions, and the verdict
on Table 1 from the committed 200-image runs of two networks.

The figures draw one image or the committed per-image CSVs; :func:`verdict` reads the CSVs of
``benchmarks/results`` (``table1v2_<network>.csv``: every metric on 200 dev images, ties in a map
broken at random; ``table1_<network>_pointing.csv``: the grid pointing game) and returns the
chapter's :class:`camlab.book.verdict.Verdict`.

>>> v = verdict("benchmarks/results")  # doctest: +SKIP
>>> v["lite2 drop vs gradcam"].outcome  # doctest: +SKIP
'reproduced'
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ...evaluation import metrics as M
from ...evaluation.agreement import metric_agreement
from ...evaluation.harness import read_results, summarize
from ...evaluation.stats import as_number, holm, mean_interval, paired_difference
from ...methods import METHODS
from .. import plot
from ..verdict import Claim, Verdict, counted_once, distinct_methods, rows_claim
from ..verdict import verdict as make_verdict

__all__ = [
    "NETWORKS",
    "BASELINES",
    "PAPER_TABLE1",
    "VERDICT_METRICS",
    "name",
    "load",
    "Table",
    "means_table",
    "explanation_inputs",
    "curves_figure",
    "zero_share",
    "road_figure",
    "coverage_figure",
    "distributions_figure",
    "pointing_table",
    "agreement_figure",
    "composite_figure",
    "table1_claims",
    "verdict",
]

NETWORKS = ("efficientnet_lite0", "efficientnet_lite2")
BASELINES = ("gradcam", "gradcampp", "ablationcam", "scorecam")  # the other rows of the paper's Table 1
# the paper's Table 1 (VGG-16, ILSVRC-2012 validation set): confidence drop % (↓), increase number % (↑)
PAPER_TABLE1 = {
    "gradcam": (17.94, 19.15),
    "gradcampp": (18.44, 19.75),
    "ablationcam": (12.38, 24.67),
    "scorecam": (12.21, 25.48),
    "clustercam": (11.60, 26.10),
}
VERDICT_METRICS = (
    "drop",
    "drop_unclipped",
    "increase",
    "gain",
    "insertion",
    "deletion",
    "road",
    "drop_top20",
    "pointing",
)
PERCENT = ("drop", "drop_unclipped", "increase", "gain", "drop_top20", "pointing", "drop_top10", "drop_top50")
METRIC_NAMES = {
    "drop": "drop ↓ (clipped at 0)",
    "drop_unclipped": "drop ↓ (unclipped, eq 23)",
    "increase": "increase ↑",
    "gain": "gain ↑",
    "insertion": "insertion AUC ↑",
    "deletion": "deletion AUC ↓",
    "road": "ROAD ↑",
    "drop_top20": "drop at equal area (top 20 %) ↓",
    "pointing": "pointing game, mass in tile ↑",
    "coverage": "coverage",
}
# the metrics' short names in the verdict's claim column (the arrow: which way is better)
VERDICT_NAMES = {
    "drop": "drop (clipped) ↓",
    "drop_unclipped": "drop (eq 23) ↓",
    "increase": "increase ↑",
    "gain": "gain ↑",
    "insertion": "insertion ↑",
    "deletion": "deletion ↓",
    "road": "ROAD ↑",
    "drop_top20": "drop, top 20 % ↓",
    "pointing": "pointing game ↑",
}
_NAMES = {
    "cam": "CAM",
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "hirescam": "HiResCAM",
    "smoothgradcampp": "SmoothGrad-CAM++",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "ablationcam": "Ablation-CAM",
    "scorecam": "Score-CAM",
    "groupcam": "Group-CAM",
    "clustercam": "Cluster-CAM",
    "sobel": "Sobel (control)",
}


_LATER = ("cam", "xgradcam", "hirescam", "smoothgradcampp")  # equal by construction at bn2 to an earlier method


def name(label: str) -> str:
    """A method's name for a reader: ``"gradcampp"`` → ``"Grad-CAM++"``, a labelled variant with
    its settings, ``"clustercam:…clustering=kmeans…n_clusters=8"`` → ``"Cluster-CAM (kmeans, Q = 8)"``."""
    base, _, params = label.partition(":")
    text = _NAMES.get(base, base)
    if not params:
        return text
    kv = dict(p.split("=", 1) for p in params.split(";"))
    shown = [kv["clustering"]] if "clustering" in kv else []
    shown += [f"Q = {kv['n_clusters']}"] if "n_clusters" in kv else []
    shown += [f"α = {kv['alpha']}"] if "alpha" in kv and kv["alpha"] != "0.8" else []
    return f"{text} ({', '.join(shown or [params])})"


def _short(network: str) -> str:
    return network.replace("efficientnet_", "")


def load(committed: str | Path, network: str) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The committed Table 1 run of ``network``: its per-image rows (every metric, 200 dev images,
    ties broken at random) and its grid pointing game as rows of ``image`` (the tile),
    ``method`` and ``pointing`` (the share of the map's mass inside the tile)."""
    folder = Path(committed)
    rows = read_results(folder / f"table1v2_{network}.csv")
    tiles = read_results(folder / f"table1_{network}_pointing.csv", complete=False)
    pointing = [
        {"image": f"{t['composite']}:{t['class_index']}", "method": t["method"], "pointing": t["mass_inside"]}
        for t in tiles
    ]
    return rows, pointing


def _twins(aliases: dict[str, str], method: str) -> list[str]:
    kept = aliases.get(method, method)
    return [m for m in [kept, *(a for a, k in aliases.items() if k == kept)] if m != method]


def _named(method: str, aliases: dict[str, str]) -> str:
    twins = _twins(aliases, method)
    return name(method) + (f" (= {', '.join(map(name, twins))})" if twins else "")


@dataclass(frozen=True)
class Table:
    """A small table of text cells that a notebook shows as HTML and ``print`` as plain text."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        rows = [self.header, *self.rows]
        widths = [max(len(r[k]) for r in rows) for k in range(len(self.header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(
            ([self.title] if self.title else []) + [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]
        )


def means_table(
    rows: Iterable[dict[str, Any]],
    metrics: Sequence[str] = ("drop", "drop_unclipped", "increase", "gain", "insertion", "deletion", "road"),
    title: str = "",
) -> Table:
    """Table 1 as the paper lays it out: one row per method (methods equal on every value counted
    once, :func:`camlab.book.verdict.counted_once`, their twins named), the mean of each of
    ``metrics`` the rows have with its 95 % bootstrap interval (percentages for the drops, the
    increase and the gain), and the paper's drop and increase where its Table 1 has the method."""
    rows = list(rows)
    kept, aliases = counted_once(rows)
    metrics = [m for m in metrics if any(str(r.get(m, "")) != "" for r in rows)]
    summary = {r["method"]: r for r in summarize([r for r in rows if r["method"] in kept], metrics=metrics)}
    header = ["method", "images"]
    for m in metrics:
        header += [METRIC_NAMES.get(m, m) + (" %" if m in PERCENT else "")]
        header += ["paper"] if m in ("drop", "increase") else []
    out = []
    for method in kept:
        s, cells = summary[method], [_named(method, aliases), str(summary[method]["images"])]
        for m in metrics:
            k, d = (100.0, 1) if m in PERCENT else (1.0, 3)
            cells.append(f"{k * s[m]:.{d}f} [{k * s[m + '_lo']:.{d}f}, {k * s[m + '_hi']:.{d}f}]")
            if m in ("drop", "increase"):
                p = PAPER_TABLE1.get(method)
                cells.append(f"{p[m == 'increase']:.2f}" if p else "")
        out.append(tuple(cells))
    return Table(tuple(header), tuple(out), title)


def explanation_inputs(classifier, x: torch.Tensor, specs: Sequence, layer: str | None = None, size: float = 2.6):
    """For one preprocessed image ``x`` (1×3×H×W) and each method of ``specs`` (the harness's
    ``(label, name, kwargs)``): its heatmap H over the image and the explanation input X ⊙ H that
    the drop and the increase score, titled with that image's drop (eq 23, unclipped) and increase."""
    layer = layer or classifier.target_layer
    fig, axes = plt.subplots(len(specs), 2, figsize=(2 * size, size * len(specs)), squeeze=False, layout="constrained")
    image = classifier.unnormalize(x)[0]
    for row, (label, method, kw) in zip(axes, specs, strict=True):
        exp = METHODS[method](classifier, layer, **kw)(x)
        drop = float(M.confidence_drop(classifier, x, exp.heatmaps, exp.targets, clip=False)[0])
        up = bool(M.increase(classifier, x, exp.heatmaps, exp.targets)[0])
        plot.overlay(image, exp.heatmaps[0], ax=row[0], title=f"{name(label)}: heatmap H")
        masked = classifier.unnormalize(x * exp.heatmaps[:, None].to(x))[0]  # normalised 0 = the dataset mean
        plot.overlay(
            masked, None, ax=row[1], title=f"X ⊙ H: drop {100 * drop:+.1f} %, increase {'yes' if up else 'no'}"
        )
    plot.heat_colorbar(fig, axes, label="heatmap value H")
    return fig


def curves_figure(classifier, x: torch.Tensor, specs: Sequence, layer: str | None = None, n_steps: int = 16, title=""):
    """Deletion and insertion curves of one image (1×3×H×W) for each method of ``specs``, the area
    under each curve in the legend."""
    layer = layer or classifier.target_layer
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True, layout="constrained")
    for label, method, kw in specs:
        exp = METHODS[method](classifier, layer, **kw)(x)
        for ax, fn in zip(axes, (M.deletion, M.insertion), strict=True):
            c = fn(classifier, x, exp.heatmaps, exp.targets, n_steps=n_steps)
            ax.plot(c.fractions, c.scores[0], marker=".", label=f"{name(label)} (AUC {float(c.auc[0]):.3f})")
    for ax, what in zip(
        axes,
        (
            "deletion: pixels removed, most relevant first (low AUC is good)",
            "insertion: pixels restored into a blurred image (high AUC is good)",
        ),
        strict=True,
    ):
        ax.set(title=what, xlabel="fraction of pixels removed" if ax is axes[0] else "fraction of pixels restored")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("softmax score of the class")
    fig.suptitle(title, fontsize=10)
    return fig


def zero_share(classifier, x: torch.Tensor, specs: Sequence, layer: str | None = None) -> dict[str, float]:
    """Per method of ``specs``: the share of pixels whose map value is exactly 0, averaged over the
    images of ``x`` — the ties a pixel order must break."""
    layer = layer or classifier.target_layer
    out = {}
    for label, method, kw in specs:
        heat = METHODS[method](classifier, layer, **kw)(x).heatmaps
        out[label] = float((heat == 0).flatten(1).float().mean())
    return out


def road_figure(classifier, x: torch.Tensor, specs: Sequence, layer: str | None = None, seed: int = 0, title=""):
    """ROAD on one image (1×3×H×W), one row per method of ``specs``: the map, the image with its
    30, 60 and 90 % most relevant pixels removed and imputed, and the MoRF and LeRF curves."""
    layer = layer or classifier.target_layer
    fig, axes = plt.subplots(len(specs), 5, figsize=(14, 2.9 * len(specs)), squeeze=False, layout="constrained")
    for row, (label, method, kw) in zip(axes, specs, strict=True):
        exp = METHODS[method](classifier, layer, **kw)(x)
        r = M.road(classifier, x, exp.heatmaps, exp.targets, seed=seed)
        plot.overlay(classifier.unnormalize(x)[0], exp.heatmaps[0], ax=row[0], title=name(label))
        ranks = M.pixel_ranks(exp.heatmaps, seed)
        for ax, p in zip(row[1:4], (0.3, 0.6, 0.9), strict=True):
            removed = (ranks[0] < round(p * ranks.shape[1])).view(1, *x.shape[-2:])
            filled = M.noisy_linear_impute(x.cpu(), removed, generator=torch.Generator().manual_seed(seed))
            k = int(np.argmin(np.abs(r.fractions.numpy() - p)))
            plot.overlay(
                classifier.unnormalize(filled)[0],
                None,
                ax=ax,
                title=f"{p:.0%} removed (MoRF): {float(r.morf[0, k]):.2f}",
            )
        row[4].plot(r.fractions, r.morf[0], "o-", label=f"MoRF, mean {float(r.morf_mean[0]):.2f} (↓)")
        row[4].plot(r.fractions, r.lerf[0], "s--", label=f"LeRF, mean {float(r.lerf_mean[0]):.2f} (↑)")
        row[4].set(xlabel="fraction removed and imputed", ylabel="softmax score", ylim=(0, 1))
        row[4].set_title(f"road = (LeRF − MoRF)/2 = {float(r.score[0]):.3f}", fontsize=9)
        row[4].legend(fontsize=7)
    plot.heat_colorbar(fig, axes[:, 0], label="heatmap value")
    fig.suptitle(title, fontsize=10)
    return fig


def _style(methods: Sequence[str]) -> dict[str, tuple[str, Any]]:
    markers, colours = "osD^v<>phX*P", [*plt.cm.tab10.colors, "black", "dimgrey"]
    return {m: (markers[k % len(markers)], colours[k % len(colours)]) for k, m in enumerate(methods)}


def coverage_figure(rows: Iterable[dict[str, Any]], title: str = ""):
    """Mean coverage (the map's mean value) against the mean drop, and against the drop at equal
    area (every map binarised to its top 20 %), one marker per method counted once, 95 % intervals
    both ways. Returns the figure."""
    rows = list(rows)
    kept, aliases = counted_once(rows)
    summary = summarize([r for r in rows if r["method"] in kept], metrics=["coverage", "drop", "drop_top20"])
    style = _style(kept)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True, layout="constrained")
    for ax, m in zip(axes, ("drop", "drop_top20"), strict=True):
        for s in summary:
            mk, col = style[s["method"]]
            ax.errorbar(
                s["coverage"],
                100 * s[m],
                xerr=[[s["coverage"] - s["coverage_lo"]], [s["coverage_hi"] - s["coverage"]]],
                yerr=[[100 * (s[m] - s[m + "_lo"])], [100 * (s[m + "_hi"] - s[m])]],
                fmt=mk,
                color=col,
                ms=6,
                capsize=2,
                label=_named(s["method"], aliases),
            )
        ax.set(xlabel="coverage: mean heatmap value", title=METRIC_NAMES[m])
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("mean drop over the images, % (lower is better)")
    axes[1].set_ylabel("mean drop, top 20 % kept, %")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), title="method (95 % intervals)")
    fig.suptitle(title, fontsize=10)
    return fig


def distributions_figure(
    rows: Iterable[dict[str, Any]], metrics: Sequence[str] = ("drop", "gain", "insertion", "deletion"), title=""
):
    """Per-image values as box plots with every image a dot, one panel per metric and one box per
    method counted once (:func:`camlab.book.verdict.counted_once`)."""
    rows = list(rows)
    kept, aliases = counted_once(rows)
    ncols = min(2, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 4.3 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    for ax, m in zip(axes.flat, metrics, strict=False):
        k = 100.0 if m in PERCENT else 1.0
        data = [[k * as_number(r[m]) for r in rows if r["method"] == lab and r[m] != ""] for lab in kept]
        ax.boxplot(data, showfliers=False)
        for i, d in enumerate(data, 1):
            ax.scatter(i + np.random.default_rng(i).uniform(-0.2, 0.2, len(d)), d, s=3, alpha=0.3, color="tab:blue")
        ax.set_xticks(range(1, len(kept) + 1), [name(lab) for lab in kept], rotation=60, ha="right", fontsize=7)
        ax.set_title(METRIC_NAMES.get(m, m), fontsize=9)
        ax.set_ylabel("% per image" if m in PERCENT else "area under the curve, per image", fontsize=8)
    twins = "; ".join(f"{name(a)} = {name(b)}" for a, b in aliases.items())
    boxes = "box: middle half of the images, orange line: median, whiskers: the furthest image within 1.5 box "
    boxes += "lengths; dots: images"
    fig.suptitle(
        title + f"\n{boxes}" + (f"\ndrawn once (every value within 1e-3): {twins}" if twins else ""), fontsize=9
    )
    return fig


def pointing_table(tiles: Iterable[dict[str, Any]], title: str = "") -> Table:
    """The grid pointing game of a committed run (:func:`load`'s tiles): per method, counted once
    (every tile within 1e-3 of an earlier method's), the mean share of the map's mass inside its
    tile with its 95 % bootstrap interval, best first."""
    tiles = sorted(tiles, key=lambda t: t["method"] in _LATER)  # Grad-CAM named first, its twins after it
    kept, aliases = distinct_methods(tiles, ["pointing"], atol=1e-3)
    iv = {m: mean_interval([as_number(t["pointing"]) for t in tiles if t["method"] == m]) for m in kept}
    order = sorted(kept, key=lambda m: -iv[m].mean)
    cells = tuple(
        (_named(m, aliases), str(iv[m].n), f"{iv[m].mean:.3f} [{iv[m].lo:.3f}, {iv[m].hi:.3f}]") for m in order
    )
    return Table(("method", "tiles", "mass inside the tile [95 %]"), cells, title)


def agreement_figure(rows: Iterable[dict[str, Any]], metrics: Sequence[str], seed: int = 0, title: str = ""):
    """Kendall's τ between the method rankings of every pair of ``metrics``, over the methods
    counted once without the Sobel control (:func:`camlab.evaluation.agreement.metric_agreement`,
    the images resampled for the interval). Returns ``(figure, pairs)``."""
    rows = list(rows)
    methods = [m for m in counted_once(rows)[0] if m != "sobel"]
    pairs = metric_agreement(rows, metrics, methods, n_resamples=1000, seed=seed)
    tau = np.eye(len(metrics))
    for q in pairs:
        i, j = metrics.index(q["a"]), metrics.index(q["b"])
        tau[i, j] = tau[j, i] = q["tau"]
    fig, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    im = ax.imshow(tau, cmap="RdBu", vmin=-1, vmax=1)
    ticks = [METRIC_NAMES.get(m, m) for m in metrics]
    ax.set_xticks(range(len(metrics)), ticks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(metrics)), ticks, fontsize=8)
    for i in range(len(metrics)):
        for j in range(len(metrics)):
            ax.text(
                j,
                i,
                f"{tau[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(tau[i, j]) > 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, label="Kendall's τ between the two rankings")
    ax.set_title(title or f"agreement of the method rankings, {len(methods)} methods", fontsize=9)
    return fig, pairs


def composite_figure(classifier, composite, rows: Sequence[dict[str, Any]], ncols: int = 3, width: float = 12.0):
    """The grid pointing game on one composite: for each counted tile (class) a block of panels,
    one per method, the map of that class over the whole composite with the tile framed and the
    share of the map's mass inside it in the title. ``rows`` are :func:`~camlab.evaluation.harness.pointing_game`'s
    rows of this composite, kept with their maps. The panels keep the composite's aspect, so there
    are no empty bands between rows."""
    image = classifier.unnormalize(classifier.preprocess(composite.image, resize=False))[0]
    targets = list(dict.fromkeys(r["class_index"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    per = -(-len(methods) // ncols)
    h, w = image.shape[-2:]
    fig, axes = plt.subplots(
        per * len(targets),
        ncols,
        squeeze=False,
        layout="constrained",
        figsize=(width, len(targets) * per * (width / ncols) * h / w + 0.5 * len(targets)),
    )
    for t, c in enumerate(targets):
        box = composite.boxes[composite.class_indices.index(c)]
        for k, ax in enumerate(axes[t * per : (t + 1) * per].flat):
            if k >= len(methods):
                ax.axis("off")
                continue
            r = next(r for r in rows if r["class_index"] == c and r["method"] == methods[k])
            plot.overlay(
                image, r["heatmap"], ax=ax, title=f"{name(methods[k])} → {r['label']}: {r['mass_inside']:.0%} inside"
            )
            ax.add_patch(plt.Rectangle((box[1], box[0]), box[3], box[2], fill=False, ec="white", lw=2.5, ls="--"))
    plot.heat_colorbar(fig, axes, label="heatmap value")
    fig.suptitle("grid pointing game: each class explained on the whole composite, its own tile framed", fontsize=10)
    return fig


def table1_claims(rows: Sequence[dict[str, Any]], pointing: Sequence[dict[str, Any]], network: str) -> list[Claim]:
    """The claims of one network: Cluster-CAM better than each baseline of the paper's Table 1 on
    each of :data:`VERDICT_METRICS`, paired over the images (the tiles, for the pointing game);
    a baseline that is another method by construction is counted once, under the name of the
    method kept (its twins are named in the means tables). The claim text is short and runs in a
    fixed order: network, who claims it, metric (:data:`VERDICT_NAMES`), the comparison."""
    _, aliases = counted_once(rows)
    out = []
    for metric in VERDICT_METRICS:
        source = pointing if metric == "pointing" else rows
        for ref in BASELINES:
            who = "paper Table 1" if metric in ("drop", "drop_unclipped", "increase") else "extends Table 1"
            side = "<" if not M.HIGHER_IS_BETTER[metric] else ">"
            shown = name(aliases.get(ref, ref))
            text = f"{_short(network)} · {who}: {VERDICT_NAMES[metric]}, Cluster-CAM {side} {shown}"
            paper = ""
            if metric in ("drop", "drop_unclipped", "increase"):  # the paper does not say whether its drop is clipped
                c, r = PAPER_TABLE1["clustercam"][metric == "increase"], PAPER_TABLE1[ref][metric == "increase"]
                paper = f"{c - r:+.2f} ({c:.2f} vs {r:.2f})"
            pct = metric in PERCENT
            out.append(
                rows_claim(
                    source,
                    "clustercam",
                    ref,
                    metric,
                    text,
                    label=f"{_short(network)} {metric} vs {ref}",
                    scale=100 if pct else 1,
                    unit="points" if pct else "",
                    paper=paper,
                )
            )
    return out


def _p(rows: Sequence[dict[str, Any]], ref: str, metric: str) -> float:
    by: dict[str, dict[str, float]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = as_number(r.get(metric, ""))
    images = [i for i in by["clustercam"] if i in by[ref]]
    return paired_difference([by["clustercam"][i] for i in images], [by[ref][i] for i in images]).p


def verdict(committed: str | Path) -> Verdict:
    """Notebook 07's verdict: the paper's Table 1 claims (Cluster-CAM better than Grad-CAM,
    Grad-CAM++, Ablation-CAM and Score-CAM on the confidence drop and the increase number), and the
    same claim on every other metric camlab measures, on both networks (:func:`table1_claims`),
    from the committed runs in ``committed``; five sentences checked against the table."""
    claims, ps = [], []
    for network in NETWORKS:
        rows, pointing = load(committed, network)
        claims += table1_claims(rows, pointing, network)
        ps += [_p(pointing if m == "pointing" else rows, ref, m) for m in VERDICT_METRICS for ref in BASELINES]
    by = {c.label: c for c in claims}
    o = {label: c.outcome for label, c in by.items()}

    def pick(nets: str, metrics: Sequence[str], refs: Sequence[str] = BASELINES) -> dict[str, str]:
        return {f"{n} {m} vs {r}": o[f"{n} {m} vs {r}"] for n in nets.split() for m in metrics for r in refs}

    reproduced = [k for k, c in enumerate(claims) if c.outcome == "reproduced"]
    contradicted = [k for k, c in enumerate(claims) if c.outcome == "contradicted"]
    adjusted = holm(ps)
    held = [k for k in reproduced + contradicted if adjusted[k] <= 0.05]
    claims = [replace(c, claim=c.claim + " (Holm ✓)") if k in held else c for k, c in enumerate(claims)]
    notes = [
        (
            "On lite2 the paper's Table 1 claims, a lower drop (clipped or not) and a higher increase, are reproduced "
            "against Grad-CAM, Grad-CAM++ and Ablation-CAM and not separated against Score-CAM.",
            pick("lite2", ("drop", "drop_unclipped", "increase")),
        ),
        (
            "On lite0 the clipped drop and the increase are not separated against any baseline, and the unclipped drop "
            "of eq 23 is reproduced against Grad-CAM and Grad-CAM++ only.",
            {**pick("lite0", ("drop", "increase")), **pick("lite0", ("drop_unclipped",), ("gradcam", "gradcampp"))},
        ),
        (
            "The gain is reproduced against every baseline on both networks except Score-CAM on lite0 (not separated); "
            "the pointing game is reproduced against Grad-CAM++ on both networks and Score-CAM on lite2, contradicted "
            "against Ablation-CAM on lite2, and not separated for the other baselines.",
            pick("lite0 lite2", ("gain", "pointing")),
        ),
        (
            "Deletion, ROAD and the drop at equal area are contradicted against every baseline on both networks, save "
            "Grad-CAM++ on lite2 at equal area, and so is insertion on lite0 and against Score-CAM on lite2.",
            {
                **pick("lite0 lite2", ("deletion", "road")),
                **pick("lite0", ("drop_top20", "insertion")),
                **pick("lite2", ("drop_top20",), ("gradcam", "ablationcam", "scorecam")),
                **pick("lite2", ("insertion",), ("scorecam",)),
            },
        ),
        (
            f"{len(set(held) & set(reproduced))} of the {len(reproduced)} reproduced rows and "
            f"{len(set(held) & set(contradicted))} of the {len(contradicted)} contradicted rows hold after "
            f"Holm's correction over all {len(claims)} comparisons of the table (sign-flip tests; marked Holm ✓ in "
            "the claim column).",
            {claims[k].label: claims[k].outcome for k in reproduced + contradicted},
        ),
    ]
    return make_verdict(claims, notes)
