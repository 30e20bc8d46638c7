"""Notebook 05, Cluster-CAM (Feng et al. 2023): the chapter's figures, measurements and verdict.

The chapter shows Cluster-CAM at two named settings — the paper's (K-means, Q = 6 as in its
Table 2, eq 22 as printed) and camlab's defaults (:data:`camlab.methods.cluster.DEFAULTS`) — and
judges the lesson's claims from the committed runs of ``benchmarks/results``:

- :func:`settings` names the two settings; :func:`distinct_columns` keeps only the methods whose
  maps differ (at ``bn2`` several CAMs coincide by construction);
- :func:`cost_rows` and :func:`plot_cost` give each method's forward passes *and* time;
- :func:`peak_ratio` measures how far apart the base's and the scissors' scales are (why
  camlab scales the two maps before eq 22), :func:`read_peaks` reads the committed run of it;
- :func:`swap_figure` draws base, scissors and heatmap per target (the paper's Figs. 3–4),
  :func:`region_shares` and :func:`fig4_parts` test the paper's Fig. 4 reading on two boxes;
- :func:`seed_table` shows what a new K-means seed does to the base and the scissors;
- :func:`verdict` builds the chapter's verdict table.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ...core.maps import normalize_maps, upsample
from ...methods.cluster import DEFAULTS, ClusterRuns, ClusterState
from ..plot import overlay, to_rgb_array
from ..verdict import Claim, Verdict, exact_claim, mean_claim
from ..verdict import verdict as make_verdict

__all__ = [
    "COST_NAMES",
    "FOREHEAD",
    "LOWER_FACE",
    "NEAR_DEAD",
    "FIG4_MARGIN",
    "settings",
    "map_corr",
    "couplings",
    "distinct_columns",
    "cost_rows",
    "plot_cost",
    "peak_ratio",
    "peak_rows",
    "read_peaks",
    "swap_figure",
    "swap_outcome",
    "region_shares",
    "fig4_parts",
    "seed_table",
    "read_seed_stability",
    "read_swaps",
    "verdict",
]

# The paper's Fig. 4 regions on the guenon photo, as fractions (top, bottom, left, right) of the
# 224×224 input: fixed by eye on the photo alone, before any map was drawn. The forehead is the
# blond band above the eyes; the lower face the nose, mouth and chin below them.
FOREHEAD = (0.0, 0.38, 0.15, 0.85)
LOWER_FACE = (0.55, 1.0, 0.3, 0.75)
COST_NAMES = {  # the methods of the committed timing run (bench_table2_cpu.csv), as the chapter names them
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "eigencam": "EigenCAM",
    "groupcam": "Group-CAM",
    "ablationcam": "Ablation-CAM",
    "scorecam": "Score-CAM",
    "clustercam:clustering=kmeans;n_clusters=6;coupling=paper": "Cluster-CAM, paper's setting",
    "clustercam": "Cluster-CAM, camlab's defaults",
    "clustercam:n_clusters=6": "Cluster-CAM, camlab's defaults at Q = 6",
}
# a box "holds more" of a mask when its mean mask value exceeds the other box's: the paper's words, with
# no margin of camlab's own (one photo and two hand-drawn boxes give no interval to judge a margin by)
FIG4_MARGIN = 0.0
NEAR_DEAD = 0.05  # a channel whose map peaks below this share of the image's strongest channel's peak


def settings(
    clustering: str = "kmeans",
    n_clusters: int = 6,
    alpha: float = 0.8,
    coupling: str = "paper",
    seed: int = 0,
    n_eigvecs: int = 7,
) -> dict[str, dict[str, Any]]:
    """The chapter's two named Cluster-CAM settings, as ClusterCAM keyword arguments: the paper's
    (by default K-means, Q = 6 as the paper's Table 2 states, eq 22 as printed; the paper gives no
    α) and camlab's defaults (:data:`~camlab.methods.cluster.DEFAULTS`)."""
    eq = {"paper": "eq 22 as printed", "normalized": "eq 22'", "weighted": "weighted"}
    d = DEFAULTS
    paper = f"paper's setting: {clustering}, Q = {n_clusters}, {eq[coupling]}, α = {alpha}"
    ours = f"camlab's defaults: {d['clustering']}, Q = {d['n_clusters']}, {eq[d['coupling']]}, α = {d['alpha']}"
    return {
        paper.replace("kmeans", "K-means"): dict(
            clustering=clustering, n_clusters=n_clusters, alpha=alpha, coupling=coupling, seed=seed, n_eigvecs=n_eigvecs
        ),
        ours.replace("ward", "Ward"): dict(DEFAULTS, seed=seed),
    }


def map_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two maps (NaN where either is constant)."""
    a, b = a.flatten().double(), b.flatten().double()
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def distinct_columns(
    maps: Mapping[str, torch.Tensor], threshold: float = 0.95
) -> tuple[list[str], dict[str, tuple[str, float]]]:
    """The methods worth a column: in order, a method whose maps (B×H×W) correlate, on average
    over the images, at least ``threshold`` with an earlier kept method's is left out. Returns
    ``(kept, merged)``, ``merged`` mapping each left-out method to ``(the kept one, mean r)``."""
    kept: list[str] = []
    merged: dict[str, tuple[str, float]] = {}
    for name, m in maps.items():
        for k in kept:
            r = float(np.nanmean([map_corr(a, b) for a, b in zip(m, maps[k], strict=False)]))
            if r >= threshold:
                merged[name] = (k, r)
                break
        else:
            kept.append(name)
    return kept, merged


def cost_rows(path: str | Path, layer: str = "bn2") -> list[dict[str, Any]]:
    """Per method of a committed per-image timing run (``bench_table2_cpu.csv``: one row per
    method and image): the median seconds per image and the full and partial forward passes."""
    with Path(path).open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["layer"] == layer]
    out = []
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        out.append(
            dict(
                method=m,
                seconds=float(np.median([float(r["seconds"]) for r in mine])),
                full=float(np.median([float(r["full_passes"]) for r in mine])),
                partial=float(np.median([float(r["partial_passes"]) for r in mine])),
                n=len(mine),
            )
        )
    return out


def plot_cost(rows: Sequence[Mapping[str, Any]], names: Mapping[str, str] | None = None):
    """Two bar panels side by side, one bar per method: forward passes per image (full and partial
    stacked) and seconds per image, both on log axes — passes alone make a method of cheap partial
    passes look as costly as one of full passes."""
    names = COST_NAMES if names is None else names
    labels = [names.get(r["method"], r["method"]) for r in rows]
    y = np.arange(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.2), sharey=True, layout="constrained")
    full, part = np.array([r["full"] for r in rows]), np.array([r["partial"] for r in rows])
    a.barh(y, full, color="tab:blue", label="full passes")
    a.barh(y, part, left=full, color="tab:orange", label="partial passes (only the layers after the target layer)")
    a.set_xscale("log")
    a.set_xlim(0.5, None)
    a.set_xlabel("forward passes per image (log)")
    a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    b.barh(y, [r["seconds"] for r in rows], color="tab:green")
    b.set_xscale("log")
    b.set_xlabel("seconds per image, median (log)")
    a.set_yticks(y, labels, fontsize=8)
    a.invert_yaxis()
    return fig


def peak_ratio(state: ClusterState) -> np.ndarray:
    """Per image of a fitted state: the largest ``|value|`` of the base cluster's mean map over that
    of the scissors' (eq 20–21), before any scaling; ``inf`` where the scissors is silent."""
    rows = torch.arange(state.cluster_scores.shape[0])
    peaks = state.cluster_maps.flatten(2).abs().amax(2).double()
    base, scissors = peaks[rows, state.cluster_scores.argmax(1)], peaks[rows, state.cluster_scores.argmin(1)]
    with np.errstate(divide="ignore"):
        return (base / scissors).cpu().numpy()


def couplings(cam, state: ClusterState) -> dict[str, Any]:
    """One fitted state coupled four ways, no further pass: eq 22 as printed (``paper``), eq 22'
    (``normalized``), ``weighted``, and the base alone (α = 1, where both forms of eq 22 agree)."""
    out = {c: cam.couple(state, coupling=c) for c in ("paper", "normalized", "weighted")}
    out["base alone (α = 1)"] = cam.couple(state, alpha=1.0, coupling="normalized")
    return out


def peak_rows(
    module, layer: str, x: torch.Tensor, names: Sequence[str], named: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """:func:`peak_ratio` of each named setting on the images ``x`` (one forward pass shared by
    the settings): one row per setting and image, ``setting`` the name before the colon of its
    label (``"paper's setting"``), ``described`` the rest."""
    runs = ClusterRuns(module, layer, x)
    rows = []
    for label, setting in named.items():
        _, state = runs.fit(setting)
        short, _, described = label.partition(": ")
        rows += [
            dict(setting=short, described=described, image=n, ratio=float(r))
            for n, r in zip(names, peak_ratio(state), strict=False)
        ]
    return rows


def read_peaks(path: str | Path) -> dict[str, dict[str, float]]:
    """The committed peak ratios: setting (``"paper's setting"``, ``"camlab's defaults"``) → image →
    base peak / scissors peak."""
    out: dict[str, dict[str, float]] = {}
    with Path(path).open(newline="") as fh:
        for r in csv.DictReader(fh):
            out.setdefault(r["setting"], {})[r["image"]] = float(r["ratio"])
    return out


def _mask(exp, q: int, index: int = 0) -> torch.Tensor:
    return normalize_maps(upsample(exp.cluster_maps[index, q : q + 1].float(), tuple(exp.heatmaps.shape[-2:])))[0]


def swap_figure(image, exps: Mapping[str, Any], boxes: Mapping[str, tuple] | None = None, size: float = 2.6):
    """One row per target of a one-image Cluster-CAM explanation: the heatmap, the base's mean map
    and the scissors' (each scaled to [0, 1], as the masks of eq 19), titled with their cluster and
    score — so a swap of base and scissors between two targets reads as the same cluster changing
    column. ``exps`` maps a row label (the target and its probability; line breaks welcome) to its
    explanation. ``boxes`` (name → fractions top, bottom, left, right) are outlined on every panel."""
    rgb = to_rgb_array(image)
    h, w = rgb.shape[:2]
    fig = plt.figure(figsize=(3 * size + 0.4, len(exps) * (size * h / w + 0.75)), layout="constrained")
    subs = fig.subfigures(len(exps), 1, squeeze=False)[:, 0]  # one per target, titled with it
    for sub, (target, e) in zip(subs, exps.items(), strict=True):
        row = sub.subplots(1, 3)
        sub.suptitle(target, fontsize=9)
        b, s, y = int(e.base[0]), int(e.scissors[0]), e.cluster_scores[0]
        coupling = e.params.get("coupling")
        overlay(rgb, e.heatmaps[0], ax=row[0], title=f"heatmap ({coupling})")
        n = torch.bincount(e.labels[0], minlength=len(y))
        overlay(rgb, _mask(e, b), ax=row[1], title=f"base: cluster {b} ({int(n[b])} ch.), y = {float(y[b]):.3f}")
        overlay(rgb, _mask(e, s), ax=row[2], title=f"scissors: cluster {s} ({int(n[s])} ch.), y = {float(y[s]):.3f}")
        for ax, colour in zip(row, ("black", "limegreen", "red"), strict=False):
            for spine in ax.spines.values():
                spine.set(edgecolor=colour, linewidth=3)
            for (name, (t, bt, lf, rt)), c in zip((boxes or {}).items(), ("white", "magenta"), strict=False):
                ax.add_patch(plt.Rectangle((lf * w, t * h), (rt - lf) * w, (bt - t) * h, fill=False, ec=c, lw=1.5))
                ax.text(lf * w + 2, t * h + 2, name, color=c, fontsize=7, va="top")
    return fig


def swap_outcome(swap: Mapping[str, bool]) -> str:
    """The outcome of :func:`camlab.book.sweeps.base_scissors_swaps` in words."""
    if swap["swapped"]:
        return "interchanged both ways"
    return "interchanged one way only" if swap["half"] else "not interchanged"


def region_shares(mask: torch.Tensor, boxes: Mapping[str, tuple]) -> dict[str, float]:
    """The mean value of an H×W map in [0, 1] inside each box (fractions top, bottom, left, right)."""
    h, w = mask.shape[-2:]
    return {
        name: float(mask[round(t * h) : round(b * h), round(lf * w) : round(r * w)].mean())
        for name, (t, b, lf, r) in boxes.items()
    }


def fig4_parts(exp) -> dict[str, float]:
    """The paper's Fig. 4 reading on a one-image explanation of the guenon photo for guenon: how
    much more the base's mask covers the forehead than the lower face (``base``), and the
    scissors' mask the lower face than the forehead (``scissors``), as differences of mean mask
    values (:data:`FOREHEAD`, :data:`LOWER_FACE`); both above :data:`FIG4_MARGIN`: the paper's
    reading holds. ``heatmap``: how much more the heatmap covers the forehead (the paper's figure
    shows Cluster-CAM's heatmap on the forehead only)."""
    boxes = {"forehead": FOREHEAD, "lower face": LOWER_FACE}
    base = region_shares(_mask(exp, int(exp.base[0])), boxes)
    scissors = region_shares(_mask(exp, int(exp.scissors[0])), boxes)
    heat = region_shares(exp.heatmaps[0], boxes)
    return {
        "base": base["forehead"] - base["lower face"],
        "scissors": scissors["lower face"] - scissors["forehead"],
        "heatmap": heat["forehead"] - heat["lower face"],
    }


def seed_table(module, layer: str, x: torch.Tensor, seeds: Sequence[int], **setting: Any):
    """What each seed does to Cluster-CAM on one image ``x`` (1×3×H×W), against the first seed:
    per seed its base and scissors (channel count, identical set or not, Jaccard overlap), the
    share of the base's channels that are near-dead (:data:`NEAR_DEAD`), the map's correlation
    with the first seed's, and the largest cluster (``largest_n`` channels, ``largest_dead`` of
    them near-dead, ``largest_is_base``; ``dead_share``: the near-dead share of all channels).
    One forward pass serves every seed. Returns ``(rows, explanations)``."""
    runs = ClusterRuns(module, layer, x)
    exps = {s: runs.explain({**setting, "seed": s}) for s in seeds}
    _, state = runs.fit({**setting, "seed": seeds[0]})
    peaks = state.context.activations[0].flatten(1).amax(1)
    dead = peaks < NEAR_DEAD * peaks.max()

    def members(e, which):
        return set((e.labels[0] == int(which[0])).nonzero().flatten().tolist())

    first = exps[seeds[0]]
    b0, s0 = members(first, first.base), members(first, first.scissors)
    rows = []
    for s, e in exps.items():
        b, sc = members(e, e.base), members(e, e.scissors)
        big = int(torch.bincount(e.labels[0]).argmax())  # the largest cluster
        rows.append(
            dict(
                seed=s,
                base_n=len(b),
                base_same=b == b0,
                base_jaccard=len(b & b0) / len(b | b0),
                base_dead=float(dead[list(b)].float().mean()),
                scissors_n=len(sc),
                scissors_same=sc == s0,
                scissors_jaccard=len(sc & s0) / len(sc | s0),
                r=map_corr(e.heatmaps[0], first.heatmaps[0]),
                largest_n=int((e.labels[0] == big).sum()),
                largest_dead=float(dead[e.labels[0] == big].float().mean()),
                largest_is_base=big == int(e.base[0]),
                dead_share=float(dead.float().mean()),
            )
        )
    return rows, exps


def read_seed_stability(path: str | Path) -> dict[str, dict[str, float]]:
    """The committed seed-stability run (``seed_stability_bn2.csv``): setting → its means (``corr``,
    ``corr_min``, ``same_base``, …). A note in brackets after a setting's name is dropped."""
    with Path(path).open(newline="") as fh:
        return {
            r["setting"].split(" (the")[0]: {k: float(v) for k, v in r.items() if k != "setting"}
            for r in csv.DictReader(fh)
        }


def read_swaps(path: str | Path) -> dict[str, np.ndarray]:
    """The committed swap run (``swap_efficientnet_lite0.csv``): per composite 0/1 for ``swapped``
    (base and scissors interchanged both ways), ``half`` (at least one way) and ``same_base``."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([int(r[k]) for r in rows]) for k in ("swapped", "half", "same_base")}


def verdict(
    committed: str | Path, fig4: Mapping[str, Mapping[str, float]] | None = None, stable: float = 0.99
) -> Verdict:
    """The chapter's verdict: the paper's Fig. 4 reading per setting (``fig4``: setting name →
    :func:`fig4_parts`, measured live; reproduced when both margins exceed :data:`FIG4_MARGIN`,
    contradicted otherwise), the
    paper's Fig. 3 interchange as a rate on the committed composites, and the seed dependence of
    K-means from the committed seed run (``stable``: the heatmap correlation between seeds a
    seed-stable setting must reach)."""
    root = Path(committed)
    claims, notes = [], []
    for name, parts in (fig4 or {}).items():
        low = min(parts["base"], parts["scissors"])
        outcome = "reproduced" if low > FIG4_MARGIN else "contradicted"
        text = (
            "paper Fig. 4: on the guenon photo the base lies on the forehead, the scissors on the lower face "
            f"({name}; the smaller of the two margins, mean mask values, must exceed {FIG4_MARGIN:g})"
        )
        claims.append(Claim(f"fig4 {name}", text, low, math.nan, math.nan, outcome, n=1, paper="forehead; face"))
    swaps = read_swaps(root / "swap_efficientnet_lite0.csv")
    swap = mean_claim(
        "swap",
        "paper Fig. 3: switching the target between two objects interchanges base and scissors "
        "(in most composites; K-means, Q = 8)",
        swaps["swapped"],
        0.5,
        expect=1,
        scale=100,
        unit="%",
        paper="both of its 2 examples",
    )
    claims.append(swap)
    seeds = read_seed_stability(root / "seed_stability_bn2.csv")
    km, ward = seeds["K-means, paper"]["corr"], seeds["Ward, normalized"]["corr"]
    claims.append(
        exact_claim(
            "kmeans seeds",
            f"camlab: K-means with eq 22 as printed depends on its seed (heatmap r "
            f"between seeds below {stable}; Q = 8, 40 dev images)",
            km,
            km < stable,
            n=40,
        )
    )
    claims.append(
        exact_claim(
            "ward seeds",
            "camlab: Ward's clustering (camlab's defaults) gives one map whatever the seed",
            ward,
            ward >= 1.0,
            n=40,
        )
    )
    if fig4:
        fig4_claims = {c.label: c for c in claims if c.label.startswith("fig4 ")}
        words = {lab: c.outcome for lab, c in fig4_claims.items()}
        notes.append(
            (
                "The paper's Fig. 4 reading (base on the forehead, scissors on the lower face) is "
                + " and ".join(f"{c.outcome} ({lab[5:]}, smaller margin {c.value:+.2f})"
                               for lab, c in fig4_claims.items())
                + ".",
                words,
            )
        )
    notes.append(
        (
            f"The paper's Fig. 3 interchange is {swap.outcome} as the rule: base and scissors swap both ways on "
            f"{swap.value:.0f} % [{swap.lo:.0f}, {swap.hi:.0f}] of {swap.n} composites.",
            {"swap": swap.outcome},
        )
    )
    notes.append(
        (
            f"K-means' seed dependence is {claims[-2].outcome} (maps correlate {km:.2f} between seeds), and "
            f"Ward's seed-free map is {claims[-1].outcome}.",
            {"kmeans seeds": claims[-2].outcome, "ward seeds": claims[-1].outcome},
        )
    )
    return make_verdict(claims, notes)
