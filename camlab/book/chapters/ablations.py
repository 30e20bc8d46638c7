"""Chapter 06, ablations: what Cluster-CAM's knobs (the depth of the layer, the number of clusters
Q, the number of eigenvectors K, the balance α of eq 22, the coupling and the clustering) do to
a map, and which settings the committed run on every dev image supports.

The live figures (the paper's Figs. 5–7 and α by eye) are illustrations on one or two images;
the evidence is the committed run of ``benchmarks/full_run.py`` (``grid`` and ``alpha_q``),
read by :func:`load` into an :class:`Ablations`: every setting against camlab's defaults,
paired image by image (:func:`difference_table`, :func:`ablation_figure`), the clustering and the
coupling isolated at one Q (:func:`isolated_table`), coverage as a confound
(:func:`coverage_figure`), the rule that chose the defaults (:func:`rule_check`) and the
chapter's :func:`verdict`.

>>> ab = load("benchmarks/results")  # doctest: +SKIP
>>> print(difference_table(ab))  # doctest: +SKIP
>>> verdict("benchmarks/results")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import html
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...core.models import Classifier
from ...evaluation import stats as S
from ...evaluation.metrics import HIGHER_IS_BETTER
from ...methods.cluster import DEFAULTS, ClusterCAM, ClusterRuns
from .. import ablation_curves as AC
from .. import plot
from ..sweeps import seed_stability
from ..verdict import Claim, Verdict, exact_claim, rows_claim
from ..verdict import verdict as checked_verdict

__all__ = [
    "SCALE",
    "HEADS",
    "figure_titles",
    "depth_figure",
    "q_figure",
    "fig7_figures",
    "alpha_figure",
    "Ablations",
    "load",
    "short",
    "Table",
    "difference_table",
    "ablation_figure",
    "isolated_table",
    "coverage_figure",
    "KQ",
    "pointing_inputs",
    "measure_kq",
    "kq_figure",
    "RuleCheck",
    "rule_check",
    "FAMILIES",
    "verdict",
]

SCALE = {"drop": 100, "increase": 100}  # drop and increase in percentage points
HEADS = {
    "drop": "confidence drop % ↓",
    "increase": "increase % ↑",
    "insertion": "insertion ↑",
    "deletion": "deletion ↓",
    "pointing": "pointing ↑",
    "coverage": "coverage (mean map value)",
}
_CLUSTERING = {"ward": "Ward", "kmeans": "K-means", "spectral": "spectral"}
_COUPLING = {"normalized": "normalised", "paper": "eq 22 as printed", "weighted": "weighted"}
_LEVEL = 1 - S.CONFIDENCE  # the level of the 95 % intervals, at which Holm-adjusted p are read


# --------------------------------------------------------------------------- live illustrations


def figure_titles(clf: Classifier, x: torch.Tensor, images: Sequence[Any]) -> list[str]:
    """Row titles for the figure ``images`` (each with ``name`` and ``class_index``, as
    :func:`camlab.core.data.pick_images` gives them): the paper's class name, and below it the class
    the maps explain (the model's top 1) where that differs."""
    with torch.no_grad():
        _, top = clf.predict(x)
    return [
        p.name if p.class_index == int(t) else f"{p.name}\n(explains: {clf.categories[int(t)]})"
        for p, t in zip(images, top[:, 0], strict=True)
    ]


def _stages(clf: Classifier) -> list[str]:
    blocks = getattr(clf.module, "blocks", None)
    if blocks is None:
        return [clf.target_layer]
    return [f"blocks.{i}" for i in range(0, len(blocks), 2)] + ["bn2"]


def depth_figure(
    clf: Classifier, x: torch.Tensor, titles: Sequence[str], seed: int = 0
) -> tuple[plt.Figure, dict[str, tuple[int, int, int]]]:
    """The paper's Fig. 5: Cluster-CAM with K-means (the paper's clustering; Q, α and the coupling
    camlab's defaults) at every other stage of an EfficientNet and at ``bn2`` (another network: its
    CAM layer only). Returns the figure and, per layer, (number of maps, height, width)."""
    depth = {name: ClusterCAM(clf, name, clustering="kmeans", seed=seed)(x) for name in _stages(clf)}
    size = {n: (int(e.labels.shape[1]), *map(int, e.cluster_maps.shape[-2:])) for n, e in depth.items()}
    columns = {f"{n}\n{size[n][0]} maps, {size[n][1]}×{size[n][2]}": e for n, e in depth.items()}
    fig = plot.grid(clf.unnormalize(x), columns, row_titles=titles, size=1.8)
    fig.suptitle(
        f"Fig. 5 ({clf.name}): one layer per column, shallow to deep — K-means, Q = {DEFAULTS['n_clusters']}, "
        f"α = {DEFAULTS['alpha']}, normalised eq 22', seed {seed}",
        fontsize=10,
    )
    return fig, size


@dataclass
class QMovement:
    """How far the maps of Fig. 6 move: the mean correlation of two maps that differ only in Q
    (``across_q``) and of two that differ only in the K-means seed (``across_seeds``, per Q)."""

    across_q: float
    across_seeds: dict[int, float]

    def __str__(self) -> str:
        worst = min(self.across_seeds, key=self.across_seeds.get)
        mean_seed = float(np.nanmean(list(self.across_seeds.values())))
        return (
            f"two maps that differ only in Q: r = {self.across_q:.2f}; only in the seed: r = {mean_seed:.2f} "
            f"(lowest at Q = {worst}: {self.across_seeds[worst]:.2f})"
        )


def q_figure(
    net: Classifier,
    x: torch.Tensor,
    titles: Sequence[str],
    qs: Sequence[int] = range(2, 9),
    seed: int = 0,
    n_seeds: int = 3,
) -> tuple[plt.Figure, QMovement]:
    """The paper's Fig. 6 on ``net``: K-means at each Q of ``qs`` (one forward pass for all), and how
    far the maps move between two values of Q against between ``n_seeds`` seeds at one Q."""
    qs = list(qs)
    runs = ClusterRuns(net.module, net.target_layer, x)
    by_q = {q: runs.explain({"clustering": "kmeans", "n_clusters": q, "seed": seed}) for q in qs}
    fig = plot.grid(net.unnormalize(x), {f"Q={q}": e for q, e in by_q.items()}, row_titles=titles, size=1.6)
    fig.suptitle(
        f"Fig. 6 ({net.name}, {net.target_layer}): K-means with Q = {qs[0]} … {qs[-1]} clusters, seed {seed}",
        fontsize=10,
    )
    across_q, _ = AC.axis_agreement({(q, seed): e.heatmaps for q, e in by_q.items()})
    seeds = range(seed, seed + n_seeds)
    between = {
        q: seed_stability(net.module, x, net.target_layer, seeds, clustering="kmeans", n_clusters=q)["corr"] for q in qs
    }
    return fig, QMovement(float(np.nanmean(across_q)), between)


def fig7_figures(
    clf: Classifier,
    layer: str,
    x: torch.Tensor,
    titles: Sequence[str],
    k_fixed: int = 3,
    q_fixed: int = 6,
    seed: int = 0,
) -> list[plt.Figure]:
    """The paper's Fig. 7 on one image: spectral clustering with Q = 2 … 8 at ``K = k_fixed``, then
    K = 2 … 7 at ``Q = q_fixed`` (one forward pass and one eigendecomposition for all)."""
    runs = ClusterRuns(clf, layer, x)
    rows = (
        (
            {f"Q={q}": {"n_clusters": q, "n_eigvecs": k_fixed} for q in range(2, 9)},
            f"Q = 2 … 8 clusters at K = {k_fixed}",
        ),
        (
            {f"K={k}": {"n_clusters": q_fixed, "n_eigvecs": k} for k in range(2, 8)},
            f"K = 2 … 7 eigenvectors at Q = {q_fixed}",
        ),
    )
    figs = []
    for settings, what in rows:
        maps = {name: runs.explain({"clustering": "spectral", "seed": seed, **s}) for name, s in settings.items()}
        fig = plot.grid(clf.unnormalize(x), maps, row_titles=titles, size=2.4)
        fig.suptitle(f"Fig. 7 ({clf.name}, {layer}), spectral clustering: {what}", fontsize=10)
        figs.append(fig)
    return figs


def alpha_figure(
    clf: Classifier, layer: str, x: torch.Tensor, titles: Sequence[str], alphas: Sequence[float], seed: int = 0
) -> tuple[plt.Figure, dict[float, tuple[float, float]]]:
    """camlab's defaults re-coupled at each α of ``alphas`` on ``x`` (one fit: no forward pass per
    α). Returns the figure and, per α (0 included), (share of exactly-zero pixels, coverage =
    mean map value) over the maps of ``x``."""
    cam = ClusterCAM(clf, layer, seed=seed)
    state = cam.fit(x)
    maps = {a: cam.couple(state, alpha=a) for a in alphas}
    fig = plot.grid(clf.unnormalize(x), {f"α={a:g}": e for a, e in maps.items()}, row_titles=titles, size=1.7)
    fig.suptitle(
        f"α of eq 22 ({clf.name}, {layer}): Ward, Q = {DEFAULTS['n_clusters']}, normalised coupling — "
        "from the scissors cutting most (left) to the base cluster alone (α = 1)",
        fontsize=10,
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # α = 0 gives a constant map, and camlab warns about it
        heat = {0.0: cam.couple(state, alpha=0.0).heatmaps, **{a: e.heatmaps for a, e in maps.items()}}
    return fig, {a: (float((h == 0).float().mean()), float(h.mean())) for a, h in heat.items()}


# --------------------------------------------------------------------------- the committed run


@dataclass
class Ablations:
    """The committed run against camlab's defaults: the :class:`~camlab.book.ablation_curves.Run`,
    the default's label, every setting's :class:`~camlab.book.ablation_curves.SettingSummary` against
    it, the families of settings that move one knob, the grid's one Q, the Holm-adjusted p of
    every comparison with the default (one family), and the seed stability per setting
    (mean and lowest heatmap correlation between seeds)."""

    run: AC.Run
    default: str
    table: dict[str, AC.SettingSummary]
    families: dict[str, list[str]]
    grid_q: int
    adjusted: dict[tuple[str, str], float]
    stability: dict[str, tuple[float, float]] = field(default_factory=dict)

    def survives(self, label: str, metric: str, adjusted: Mapping[tuple[str, str], float] | None = None) -> bool:
        """Whether the paired difference of ``label`` on ``metric`` keeps a Holm-adjusted p ≤ 0.05."""
        return (self.adjusted if adjusted is None else adjusted)[(label, metric)] <= _LEVEL


def short(label: str) -> str:
    """A harness label as a reader names the setting: ``"Ward, normalised, α=0.8, Q=10"``."""
    p = AC.setting_of(label)
    text = f"{_CLUSTERING[p['clustering']]}, {_COUPLING[p['coupling']]}"
    return text + (f", α={p['alpha']:g}" if "alpha" in p else "") + f", Q={p['n_clusters']}"


def _stems(committed: str | Path, model: str) -> list[Path]:
    return [Path(committed) / f"{part}_{model}" for part in ("grid", "alpha_q")]


@functools.lru_cache(maxsize=4)
def _load(committed: str, model: str) -> Ablations | None:
    run = AC.read_run(_stems(committed, model))
    if not run.rows:
        return None
    params = {lab: AC.setting_of(lab) for lab in run.labels}
    default = AC.find_label(run.labels, **{k: DEFAULTS[k] for k in ("clustering", "coupling", "alpha", "n_clusters")})
    table = {s.label: s for s in AC.against(run, run.labels, default)}

    def family(order_by: str, **fixed: Any) -> list[str]:
        labs = [lab for lab, p in params.items() if all(p.get(k) == v for k, v in fixed.items())]
        return sorted(labs, key=lambda lab: params[lab].get(order_by, 0))

    grid_q = params[run.labels[0]]["n_clusters"]
    families = {
        "alpha": family("alpha", clustering="ward", coupling="normalized", n_clusters=grid_q),
        "q_normalized": family("n_clusters", clustering="ward", coupling="normalized", alpha=DEFAULTS["alpha"]),
        "q_weighted": family("n_clusters", clustering="ward", coupling="weighted"),
        "grid": [
            lab
            for lab in run.labels
            if params[lab]["n_clusters"] == grid_q and params[lab].get("alpha", DEFAULTS["alpha"]) == DEFAULTS["alpha"]
        ],
    }
    stability: dict[str, tuple[float, float]] = {}
    for stem in _stems(committed, model):
        for r in AC._read(stem.with_name(stem.name + "_stability.csv")):
            stability[r["method"]] = (float(r["corr"]), float(r["corr_min"]))
    return Ablations(run, default, table, families, grid_q, AC.holm_adjusted(list(table.values())), stability)


def load(committed: str | Path | None, model: str = "efficientnet_lite0") -> Ablations | None:
    """The committed ``grid`` and ``alpha_q`` runs of ``model`` under ``committed`` against camlab's
    defaults (``None`` when ``committed`` is ``None`` or holds no run). Cached per folder."""
    return None if committed is None else _load(str(Path(committed).resolve()), model)


def _num(v: float, digits: int) -> str:
    if v == 0:
        return "0"
    text = f"{v:+.{digits}f}"
    return text if float(text) != 0 else f"{v:+.2g}"


def _cell(
    ab: Ablations,
    label: str,
    metric: str,
    reference: Mapping[str, AC.SettingSummary] | None = None,
    adjusted: Mapping[tuple[str, str], float] | None = None,
) -> str:
    s = (reference or ab.table)[label]
    if s.comparison is None:
        return "(reference)"
    coverage = metric == "coverage"
    d = s.coverage_difference if coverage else s.comparison.differences[metric]
    k = 1 if coverage else SCALE.get(metric, 1)
    mark = "" if coverage else "✓" if metric in s.comparison.better else "✗" if metric in s.comparison.worse else ""
    if mark and not ab.survives(label, metric, adjusted):
        mark = f"({mark})"
    digits = 1 if k == 100 else 3
    return f"{_num(k * d.mean, digits)} [{_num(k * d.lo, digits)}, {_num(k * d.hi, digits)}] {mark}".rstrip()


@dataclass(frozen=True)
class Table:
    """A small table a notebook shows as HTML (``_repr_html_``) and ``print`` as aligned text:
    ``header``, ``rows`` (a row of one cell is a section heading), a ``caption`` above and
    ``notes`` below."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        body = [r for r in self.rows if len(r) > 1]
        widths = [max(len(r[k]) for r in (self.header, *body)) for k in range(len(self.header))]

        def line(r: Sequence[str]) -> str:
            return "  ".join(
                x.ljust(w) if k == 0 else x.rjust(w) for k, (x, w) in enumerate(zip(r, widths, strict=True))
            )

        out = [self.caption, ""] if self.caption else []
        out += [line(self.header)] + [line(r) if len(r) > 1 else f"-- {r[0]}" for r in self.rows]
        return "\n".join([*out, *self.notes]).rstrip()

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join(
            f'<tr><th colspan="{len(self.header)}" style="text-align:left">{esc(r[0])}</th></tr>'
            if len(r) == 1
            else "<tr>"
            + "".join(f'<td style="text-align:{"left" if k == 0 else "right"}">{esc(x)}</td>' for k, x in enumerate(r))
            + "</tr>"
            for r in self.rows
        )
        caption = f"<p>{esc(self.caption)}</p>" if self.caption else ""
        notes = "".join(f"<p>{esc(n)}</p>" for n in self.notes)
        return (
            f'{caption}<table class="camlab-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}'
        )


_COLUMNS = (*AC.RANKED, "coverage")


def _knob(label: str, knob: str) -> str:
    """What a row of a family shows of its setting: the knob the family moves."""
    p = AC.setting_of(label)
    if knob == "alpha":
        return f"α = {p['alpha']:g}"
    if knob == "n_clusters":
        return f"Q = {p['n_clusters']}"
    return f"{_CLUSTERING[p['clustering']]}, {_COUPLING[p['coupling']]}"


def _rows(
    ab: Ablations, groups: Mapping[str, tuple[Sequence[str], str]], reference=None, adjusted=None
) -> list[tuple[str, ...]]:
    """Table rows: per group (heading → (labels, the knob it moves)) a heading, then one row per label."""
    rows: list[tuple[str, ...]] = []
    for name, (labs, knob) in groups.items():
        rows.append((name,))
        rows += [(_knob(lab, knob), *(_cell(ab, lab, c, reference, adjusted) for c in _COLUMNS)) for lab in labs]
    return rows


def difference_table(ab: Ablations) -> Table:
    """Every setting − the defaults, paired over the images (tiles for the pointing game): the
    mean difference and its 95 % interval, drop and increase in percentage points; ✓ better and
    ✗ worse by the interval and after Holm's correction over all the table's comparisons, (✓)
    and (✗) by the interval only; coverage, a diagnostic, unmarked. Above, the defaults' means."""
    d = ab.table[ab.default].means
    head = (
        f"{ab.run.n_images} images, {ab.run.n_tiles} pointing tiles, {len(ab.run.labels)} settings. "
        f"The defaults ({short(ab.default)}) have the means "
        + "; ".join(f"{m} {SCALE.get(m, 1) * d[m].mean:.3g}" for m in _COLUMNS)
        + ". Each cell: setting − defaults [95 % interval]."
    )
    groups = {
        f"α (Ward, normalised, Q = {ab.grid_q})": (ab.families["alpha"], "alpha"),
        f"Q (Ward, normalised, α = {DEFAULTS['alpha']}; the defaults: Q = {DEFAULTS['n_clusters']})": (
            ab.families["q_normalized"],
            "n_clusters",
        ),
        "Q (Ward, weighted coupling)": (ab.families["q_weighted"], "n_clusters"),
        f"clustering, coupling (Q = {ab.grid_q}, α = {DEFAULTS['alpha']})": (ab.families["grid"], "grid"),
    }
    seps = [(lab, m) for lab, s in ab.table.items() for m in s.separated]
    kept = sum(ab.survives(lab, m) for lab, m in seps)
    foot = (
        f"{len(ab.adjusted)} comparisons with the defaults; {len(seps)} separated by their interval, "
        f"{kept} of them also after Holm's correction (adjusted p ≤ {_LEVEL:.2g})."
    )
    return Table(("setting", *(HEADS[m] for m in _COLUMNS)), tuple(_rows(ab, groups)), head, (foot,))


def _marks(ax, xs, ab: Ablations, labels: Sequence[str], metric: str, joined: bool, **style) -> None:
    k = SCALE.get(metric, 1)
    mid = np.array([k * ab.table[lab].means[metric].mean for lab in labels])
    lo = np.array([k * ab.table[lab].means[metric].lo for lab in labels])
    hi = np.array([k * ab.table[lab].means[metric].hi for lab in labels])
    line = ax.errorbar(
        xs, mid, yerr=[mid - lo, hi - mid], capsize=2, ms=7, fmt="o-" if joined else "o", mfc="white", **style
    )
    colour = line[0].get_color()
    for i, lab in enumerate(labels):
        s = ab.table[lab]
        if metric == "coverage" or metric not in s.separated:
            continue
        held = ab.survives(lab, metric)
        ax.plot(
            xs[i],
            mid[i],
            "o",
            ms=8,
            color=colour,
            zorder=3,
            fillstyle="full" if held else "left",
            markerfacecoloralt="white",
        )
    if ab.default in labels:
        i = list(labels).index(ab.default)
        ax.plot(xs[i], mid[i], "*", ms=13, color="black", zorder=4)


def ablation_figure(ab: Ablations) -> plt.Figure:
    """Small multiples, one row per metric and one column per knob: α (Ward, normalised, at the
    grid's Q), Q (Ward, normalised and weighted), and clustering × coupling at the grid's Q; each
    point a setting's mean with its 95 % interval, the rows sharing their y axis. Marker fill says
    how the setting differs from the defaults, paired (filled: interval excludes 0 and
    Holm-adjusted p ≤ 0.05; half: the interval only; hollow: not separated); the legend says so."""
    metrics = [*AC.RANKED, "coverage"]
    fig, axes = plt.subplots(
        len(metrics), 3, figsize=(12, 17), squeeze=False, sharex="col", sharey="row", layout="constrained"
    )
    knobs = (
        f"α (Ward, normalised, Q = {ab.grid_q})",
        f"Q (Ward; the defaults: normalised, α = {DEFAULTS['alpha']})",
        f"clustering × coupling (Q = {ab.grid_q}, α = {DEFAULTS['alpha']})",
    )
    params = {lab: AC.setting_of(lab) for lab in ab.run.labels}
    order = ["kmeans", "spectral", "ward"]
    for row, m in enumerate(metrics):
        k, ref = SCALE.get(m, 1), ab.table[ab.default].means[m]
        for ax in axes[row]:
            ax.axhspan(k * ref.lo, k * ref.hi, color="grey", alpha=0.15, lw=0)
            ax.axhline(k * ref.mean, color="grey", ls="--", lw=1)
        labs = ab.families["alpha"]
        _marks(axes[row, 0], [params[lab]["alpha"] for lab in labs], ab, labs, m, True, color="tab:blue")
        for fam, colour in (("q_normalized", "tab:blue"), ("q_weighted", "tab:orange")):
            labs = ab.families[fam]
            _marks(axes[row, 1], [params[lab]["n_clusters"] for lab in labs], ab, labs, m, True, color=colour)
        for shift, (coupling, colour) in zip(
            (-0.15, 0, 0.15),
            (("normalized", "tab:blue"), ("paper", "tab:green"), ("weighted", "tab:orange")),
            strict=True,
        ):
            labs = sorted(
                (lab for lab in ab.families["grid"] if params[lab]["coupling"] == coupling),
                key=lambda lab: order.index(params[lab]["clustering"]),
            )
            xs = [order.index(params[lab]["clustering"]) + shift for lab in labs]
            _marks(axes[row, 2], xs, ab, labs, m, False, color=colour)
        axes[row, 0].set_ylabel(HEADS[m] + ("\n(a diagnostic: no marks)" if m == "coverage" else ""), fontsize=10)
    for col, knob in enumerate(knobs):
        axes[0, col].set_title(knob, fontsize=10)
    axes[-1, 0].set_xlabel("α", fontsize=10)
    axes[-1, 1].set_xlabel("Q (clusters)", fontsize=10)
    axes[-1, 2].set_xticks(range(3), ["K-means", "spectral", "Ward"])
    axes[-1, 2].set_xlabel("clustering", fontsize=10)
    handles = [
        Line2D([], [], color="tab:blue", marker="o", mfc="white", label="normalised coupling (camlab's eq 22')"),
        Line2D([], [], color="tab:green", marker="o", mfc="white", ls="", label="eq 22 as printed"),
        Line2D([], [], color="tab:orange", marker="o", mfc="white", label="weighted coupling"),
        Line2D([], [], color="black", marker="*", ms=12, ls="", label="camlab's defaults"),
        Line2D([], [], color="grey", ls="--", label="the defaults' mean (grey band: its 95 % interval)"),
        Line2D(
            [],
            [],
            color="grey",
            marker="o",
            ms=7,
            ls="",
            label="differs from the defaults: interval excludes 0, Holm p ≤ 0.05",
        ),
        Line2D(
            [],
            [],
            color="grey",
            marker="o",
            ms=7,
            ls="",
            fillstyle="left",
            markerfacecoloralt="white",
            label="interval excludes 0, not after Holm's correction",
        ),
        Line2D([], [], color="grey", marker="o", ms=7, ls="", mfc="white", label="not separated from the defaults"),
        Patch(color="none", label="bars: 95 % intervals of the means"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(
        f"Each knob moved alone: the committed run on {ab.run.n_images} dev images and {ab.run.n_tiles} "
        "pointing tiles\n"
        f"(columns: the knob; rows: the metric; each setting paired to the defaults, {short(ab.default)})",
        fontsize=11,
    )
    return fig


def isolated_table(ab: Ablations) -> Table:
    """Clustering and coupling at the grid's one Q and α: each setting against Ward with the
    normalised coupling at that Q, paired, with Holm's correction over these comparisons alone,
    and in the last column every setting's seed stability (mean heatmap correlation between
    seeds, and the lowest pair)."""
    ward = AC.find_label(ab.families["grid"], clustering="ward", coupling="normalized")
    others = [lab for lab in ab.families["grid"] if lab != ward]
    iso = {s.label: s for s in AC.against(ab.run, [ward, *others], ward)}
    adjusted = AC.holm_adjusted(list(iso.values()))
    rows = _rows(ab, {f"Q = {ab.grid_q}, α = {DEFAULTS['alpha']}": ([ward, *others], "grid")}, iso, adjusted)
    for k, lab in enumerate([ward, *others], start=1):
        corr, low = ab.stability.get(lab, (math.nan, math.nan))
        no_seed = " (no seed)" if AC.setting_of(lab)["clustering"] == "ward" else ""
        rows[k] = (*rows[k], f"{corr:.3f} ({low:+.2f}){no_seed}")
    seps = [(lab, m) for lab, s in iso.items() for m in s.separated]
    foot = (
        f"Holm's correction over these {len(adjusted)} comparisons keeps "
        f"{sum(ab.survives(lab, m, adjusted) for lab, m in seps)} of the {len(seps)} separations. "
        "Seed stability: mean correlation between the maps of different seeds (lowest pair); "
        "Ward's clustering has no seed, so 1 by construction."
    )
    header = ("setting", *(HEADS[m] for m in _COLUMNS), "seed stability")
    return Table(header, tuple(rows), "Each cell: setting − Ward, normalised [95 % interval].", (foot,))


def coverage_figure(ab: Ablations, seed: int = 0) -> tuple[plt.Figure, Table]:
    """Does a metric follow coverage (the map's mean value) across settings? Pearson's r between
    the settings' mean coverage and mean metric, pooled over every setting (interval resampling
    the settings) and within each family that moves one knob (resampling the images). Returns a
    scatter of the settings and the table of r."""
    fams = {
        f"α (Q = {ab.grid_q})": ab.families["alpha"],
        "Q, normalised": ab.families["q_normalized"],
        "Q, weighted": ab.families["q_weighted"],
    }
    rest = [lab for lab in ab.families["grid"] if lab not in ab.families["alpha"] + ab.families["q_weighted"]]
    fig, axes = plt.subplots(1, len(AC.RANKED), figsize=(17, 3.8), layout="constrained")
    for ax, m in zip(axes, AC.RANKED, strict=False):
        k = SCALE.get(m, 1)
        for (name, labs), marker in zip(
            {**fams, f"other clustering × coupling (Q = {ab.grid_q})": rest}.items(), "osD^", strict=False
        ):
            c = [ab.table[lab].means["coverage"] for lab in labs]
            v = [ab.table[lab].means[m] for lab in labs]
            ax.errorbar(
                [i.mean for i in c],
                [k * i.mean for i in v],
                xerr=[[i.mean - i.lo for i in c], [i.hi - i.mean for i in c]],
                yerr=[[k * (i.mean - i.lo) for i in v], [k * (i.hi - i.mean) for i in v]],
                fmt=marker,
                ms=5,
                capsize=2,
                label=name,
            )
        ax.set_xlabel(HEADS["coverage"], fontsize=8)
        ax.set_ylabel(HEADS[m], fontsize=8)
        ax.set_title(HEADS[m], fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Each point a setting of the committed run ({ab.run.n_images} images): mean and 95 % interval", fontsize=9
    )
    rows = [
        (
            "pooled over all settings (resampling the settings)",
            *(_r(AC.coverage_correlation(ab.run, m, resample="settings", seed=seed)) for m in AC.RANKED),
        )
    ]
    for name, labs in fams.items():
        rs = [
            AC.coverage_correlation(ab.run, m, labels=labs, resample="images", n_resamples=1000, seed=seed)
            for m in AC.RANKED
        ]
        rows.append((f"within {name} (resampling the images)", *map(_r, rs)))
    caption = "Pearson's r between the settings' mean coverage and mean metric [95 % bootstrap interval]."
    return fig, Table(("settings", *(HEADS[m] for m in AC.RANKED)), tuple(rows), caption)


def _r(r: S.Interval) -> str:
    return f"{r.mean:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]"


# --------------------------------------------------------------------------- K × Q, measured live


@dataclass
class KQ:
    """A live K × Q grid of spectral clustering: the settings' maps and measured :class:`Run`, each
    setting against ``reference`` (nearest camlab's spectral K and Q), and per image the mean
    correlation of two maps that differ only in K (``along_k``) or only in Q (``along_q``)."""

    ks: list[int]
    qs: list[int]
    names: dict[tuple[int, int], str]
    run: AC.Run
    table: dict[str, AC.SettingSummary]
    reference: str
    along_k: np.ndarray
    along_q: np.ndarray
    metrics: list[str]

    @property
    def difference(self) -> S.Difference:
        """The paired difference of the correlations, only-K − only-Q, over the images."""
        return S.paired_difference(self.along_k, self.along_q)

    @property
    def testable(self) -> bool:
        """Whether a paired sign-flip test on this many images can reach p ≤ 0.05 at all."""
        return 2 / 2 ** len(self.along_k) <= _LEVEL

    def __str__(self) -> str:
        lines = [f"{'':12s}" + "".join(f"{m:>24s}" for m in self.metrics)]
        for name, s in self.table.items():
            lines.append(f"{name:12s}" + "".join(f"{_mean(s.means[m], SCALE.get(m, 1)):>24s}" for m in self.metrics))
        k, q, d = S.mean_interval(self.along_k), S.mean_interval(self.along_q), self.difference
        lines += [
            "",
            f"maps that differ only in K: r = {_mean(k)}; only in Q: r = {_mean(q)}; "
            f"paired K − Q: {d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}] over {d.n} images",
        ]
        if self.testable:
            moves = "K" if d.hi < 0 else "Q" if d.lo > 0 else "not separated (the interval contains 0)"
            lines.append(f"which knob moves the maps more: {moves}; the paper reads its Fig. 7 as K")
        else:
            lines.append(
                f"with {len(self.along_k)} images no paired sign-flip test can reach p ≤ 0.05: nothing is tested"
            )
        return "\n".join(lines)


def _mean(iv: S.Interval, k: float = 1) -> str:
    return f"{k * iv.mean:.3g} [{k * iv.lo:.3g}, {k * iv.hi:.3g}]"


def pointing_inputs(clf: Classifier, composites: Sequence[Any]):
    """The grid pointing game's inputs for :func:`measure_kq`: ``(tiles, targets, boxes)`` of the
    tiles whose class the model ranks in its top 5 on the composite
    (:func:`camlab.evaluation.harness.pointing_tiles`); ``None`` without composites or tiles."""
    from ...evaluation.harness import pointing_tiles

    tiles, _ = pointing_tiles(clf, composites) if composites else ([], 0)
    if not tiles:
        return None
    targets = torch.tensor([t["class_index"] for t in tiles])
    return torch.cat([t["x"] for t in tiles]), targets, [t["box"] for t in tiles]


def measure_kq(
    clf: Classifier,
    layer: str,
    x: torch.Tensor,
    images: Sequence[str],
    ks: Sequence[int],
    qs: Sequence[int],
    n_steps: int = 8,
    pointing=None,
    seed: int = 0,
) -> KQ:
    """Spectral clustering on ``x`` for every K of ``ks`` × Q of ``qs``, measured with the run's
    metrics (the pointing game where ``pointing`` tiles are given,
    :func:`camlab.book.ablation_curves.measure_settings`), and how far the maps move along each knob."""
    names = {(k, q): f"K={k}, Q={q}" for k in ks for q in qs}
    settings = {
        n: {"clustering": "spectral", "n_eigvecs": k, "n_clusters": q, "seed": seed} for (k, q), n in names.items()
    }
    maps, run = AC.measure_settings(clf, layer, x, settings, n_steps=n_steps, images=list(images), pointing=pointing)
    ref = names[min(names, key=lambda kq: (abs(kq[0] - DEFAULTS["n_eigvecs"]), abs(kq[1] - DEFAULTS["n_clusters"])))]
    metrics = [m for m in AC.RANKED if m != "pointing" or run.tiles]
    table = {s.label: s for s in AC.against(run, run.labels, ref, metrics)}
    along_k, along_q = AC.axis_agreement({kq: maps[n] for kq, n in names.items()})
    return KQ(list(ks), list(qs), names, run, table, ref, along_k, along_q, metrics)


def kq_figure(kq: KQ) -> plt.Figure:
    """One heat grid per metric (rows K, columns Q; yellow = better on every panel), and a bar of
    how far the maps move when only K or only Q differs."""
    shown = [m for m in ("drop", "deletion", "insertion", "pointing") if m in kq.metrics]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(4 * len(shown) + 3.5, 3.4), layout="constrained")
    for ax, m in zip(axes, shown, strict=False):
        k_ = SCALE.get(m, 1)
        means = np.array([[k_ * kq.table[kq.names[(k, q)]].means[m].mean for q in kq.qs] for k in kq.ks])
        im = ax.imshow(means, cmap="viridis" if HIGHER_IS_BETTER[m] else "viridis_r", aspect="auto")
        middle = (np.nanmin(means) + np.nanmax(means)) / 2
        for i in range(len(kq.ks)):
            for j in range(len(kq.qs)):
                light = (means[i, j] > middle) == HIGHER_IS_BETTER[m]  # where the colour map is yellow
                ax.text(
                    j,
                    i,
                    f"{means[i, j]:.3g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if light else "white",
                )
        ax.set_xticks(range(len(kq.qs)), kq.qs)
        ax.set_yticks(range(len(kq.ks)), kq.ks)
        ax.set_xlabel("Q (clusters)")
        ax.set_ylabel("K (eigenvectors)")
        ax.set_title(HEADS[m], fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label=HEADS[m])
    ax = axes[-1]
    k_iv, q_iv = S.mean_interval(kq.along_k), S.mean_interval(kq.along_q)
    ax.bar(
        [0, 1],
        [k_iv.mean, q_iv.mean],
        color=["tab:orange", "tab:blue"],
        yerr=[[k_iv.mean - k_iv.lo, q_iv.mean - q_iv.lo], [k_iv.hi - k_iv.mean, q_iv.hi - q_iv.mean]],
        capsize=4,
    )
    ax.set_xticks([0, 1], ["only K differs", "only Q differs"])
    ax.set_ylabel("correlation of the two maps")
    ax.set_ylim(0, 1.05)
    ax.set_title("how far the maps move (95 % intervals)", fontsize=9)
    fig.suptitle(
        f"Spectral clustering, K × Q, measured on {len(kq.along_k)} dev images: means (yellow = better)", fontsize=9
    )
    return fig


# --------------------------------------------------------------------------- the rule and the verdict


@dataclass
class RuleCheck:
    """The rule that chose the defaults (``benchmarks/defaults_rule.py``) applied to the committed
    CSVs: the setting it chooses, camlab's defaults on the same keys, the settings tied first by
    the rule's overlap test, and its table of seed-stable settings, best first."""

    chosen: dict[str, Any]
    current: dict[str, Any]
    tied_first: list[str]
    table: list[dict[str, Any]]
    stable: float

    @property
    def agrees(self) -> bool:
        return self.chosen == self.current

    def __str__(self) -> str:
        lines = [f"{len(self.table)} seed-stable settings (correlation between seeds ≥ {self.stable}); the best six:"]
        lines += [
            f"  {short(r['value']):34s} mean rank {r['mean_rank']:.2f}, {r['n_forward']:.0f} passes per image"
            for r in self.table[:6]
        ]
        lines.append(f"tied first by the overlap test: {'; '.join(map(short, self.tied_first))}")
        lines.append(f"the rule chooses (fewer passes first): {self.chosen}")
        lines.append(
            f"camlab.ClusterCAM's defaults:           {self.current} — {'the same' if self.agrees else 'different'}"
        )
        return "\n".join(lines)


@functools.lru_cache(maxsize=4)
def _rule_check(committed: str, model: str) -> RuleCheck | None:
    path = Path(committed).parent / "defaults_rule.py"  # the rule is kept beside the run it judged
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("defaults_rule", path)
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    rows, stability = rule.read_measured(_stems(committed, model))
    if not rows:
        return None
    winner, table = rule.choose_setting(rows, stability)
    tied = [r["value"] for r in table if r["mean_rank"] <= table[0]["mean_rank"] + 1e-9]
    chosen = winner["setting"]
    return RuleCheck(chosen, {k: DEFAULTS[k] for k in chosen}, tied, table, rule.STABLE)


def rule_check(committed: str | Path | None, model: str = "efficientnet_lite0") -> RuleCheck | None:
    """The rule of ``benchmarks/defaults_rule.py`` (next to the ``committed`` folder) on the
    committed ``grid`` and ``alpha_q`` CSVs; ``None`` without them. Cached per folder."""
    return None if committed is None else _rule_check(str(Path(committed).resolve()), model)


# Each family: (label prefix, the claim's subject, method setting, reference setting, who claims it).
FAMILIES = {
    "scissors": (
        "subtracting the scissors helps (α = 0.8 beats α = 1, the base alone; Ward, eq 22', Q = 8; the paper "
        "gives no α)",
        {"clustering": "ward", "coupling": "normalized", "alpha": 0.8, "n_clusters": 8},
        {"clustering": "ward", "coupling": "normalized", "alpha": 1.0, "n_clusters": 8},
        "paper eq 22",
    ),
    "paper form": (
        "defaults beat the paper's form (K-means, eq 22 as printed, Q = 8)",
        {k: DEFAULTS[k] for k in ("clustering", "coupling", "alpha", "n_clusters")},
        {"clustering": "kmeans", "coupling": "paper", "alpha": 0.8, "n_clusters": 8},
        "workbook",
    ),
    "weighted": (
        f"defaults beat the weighted coupling at Q = {DEFAULTS['n_clusters']}",
        {k: DEFAULTS[k] for k in ("clustering", "coupling", "alpha", "n_clusters")},
        {"clustering": "ward", "coupling": "weighted", "n_clusters": DEFAULTS["n_clusters"]},
        "workbook",
    ),
    "Q = 6": (
        f"defaults (Q = {DEFAULTS['n_clusters']}) beat Q = 6, the Q of the paper's Table 2",
        {k: DEFAULTS[k] for k in ("clustering", "coupling", "alpha", "n_clusters")},
        {"clustering": "ward", "coupling": "normalized", "alpha": 0.8, "n_clusters": 6},
        "workbook",
    ),
}


def _family_claims(run: AC.Run, name: str) -> tuple[list[Claim], list[float]]:
    text, method, reference, who = FAMILIES[name]
    a, b = AC.find_label(run.labels, **method), AC.find_label(run.labels, **reference)
    claims, ps = [], []
    for m in AC.RANKED:
        rows = run.tiles if m == "pointing" else run.rows
        unit = "points" if m in SCALE else ""
        claims.append(
            rows_claim(rows, a, b, m, f"{who}: {text} — {m}", label=f"{name}: {m}", scale=SCALE.get(m, 1), unit=unit)
        )
        va, vb = AC._values(rows, a, m), AC._values(rows, b, m)
        common = [i for i in va if i in vb]
        ps.append(S.paired_difference([va[i] for i in common], [vb[i] for i in common]).p)
    return claims, S.holm(ps)


def verdict(committed: str | Path = "benchmarks/results", model: str = "efficientnet_lite0") -> Verdict:
    """The chapter's verdict from the committed CSVs: four families of paired comparisons over the
    run's 200 dev images (the pointing game over its tiles), five metrics each — the scissors
    against the base alone (α = 0.8 against α = 1), and camlab's defaults against the paper's form,
    the weighted coupling and Q = 6 — and whether the rule stated before the run chooses the
    defaults. Within each family the five paired p are corrected with Holm's method; the last
    sentence says how many separations survive."""
    run = AC.read_run(_stems(committed, model))
    claims, separated, lost = [], 0, []
    for name in FAMILIES:
        cs, adjusted = _family_claims(run, name)
        claims += cs
        for c, p in zip(cs, adjusted, strict=True):
            separated += c.outcome != "not separated"
            lost += [c.label] if c.outcome != "not separated" and p > _LEVEL else []
    check = rule_check(committed, model)
    claims.append(
        exact_claim(
            "rule",
            "workbook: the rule stated before the run (benchmarks/defaults_rule.py) chooses camlab's defaults "
            "on these CSVs (value: settings tied first)",
            len(check.tied_first),
            check.agrees,
            n=run.n_images,
        )
    )
    c = {x.label: x for x in claims}
    o = lambda *labels: {lab: c[lab].outcome for lab in labels}  # noqa: E731
    notes = [
        (
            f"Subtracting the scissors (α = 0.8 against α = 1, Q = 8) is contradicted on drop "
            f"({c['scissors: drop'].value:+.1f} points), increase and deletion, not separated on insertion "
            f"(detectable ≥ {c['scissors: insertion'].detectable:.3f}), and reproduced on the pointing game "
            f"({c['scissors: pointing'].value:+.3f}): the scissors put more of the map inside the target's tile "
            "but cut away pixels the class score needs.",
            o(*(f"scissors: {m}" for m in AC.RANKED)),
        ),
        (
            "camlab's defaults beat the paper's form on drop, increase, insertion and deletion (all reproduced) "
            "and are not separated from it on the pointing game "
            f"(detectable ≥ {c['paper form: pointing'].detectable:.3f}).",
            o(*(f"paper form: {m}" for m in AC.RANKED)),
        ),
        (
            "Against the weighted coupling at the same Q the defaults' claim is contradicted on drop, insertion and "
            "deletion, not separated on increase and reproduced only on the pointing game "
            f"({c['weighted: pointing'].value:+.3f}).",
            o(*(f"weighted: {m}" for m in AC.RANKED)),
        ),
        (
            "Against Q = 6 the defaults are reproduced on drop and deletion and not separated on increase, insertion "
            "and the pointing game.",
            o(*(f"Q = 6: {m}" for m in AC.RANKED)),
        ),
        (
            f"The rule stated before the run chooses the defaults (reproduced), and {separated - len(lost)} of the "
            f"{separated} separations above survive Holm's correction within their family of five metrics "
            f"(not: {', '.join(lost) or 'none'}).",
            o("rule"),
        ),
    ]
    return checked_verdict(claims, notes)
