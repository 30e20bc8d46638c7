"""Chapter 04, spectral clustering of feature maps (Feng et al. 2023, §3.1, eq 10–18): the toy graph
of the derivation and its checks, the measurements on real feature maps (graph statistics, K
against Q, agreement of the clusterings), the figures, and the verdict built from the committed
200-image grid run and the live partitions.

>>> toy = toy_graph(seed=0)
>>> checks = relaxation_checks(toy)
>>> checks["fiedler_agreement"]
1.0
"""

from __future__ import annotations

import csv
import math
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ...core.layers import capture
from ...evaluation.stats import as_number, holm, mean_interval, paired_difference
from ...methods import clustering as C
from ..verdict import Verdict, exact_claim, paired_claim, rows_claim
from ..verdict import verdict as make_verdict

__all__ = [
    "ToyGraph",
    "toy_graph",
    "relaxation_checks",
    "plot_toy_graph",
    "plot_toy_spectrum",
    "capture_maps",
    "paper_scale",
    "plot_real_graph",
    "ImageGraph",
    "measure_graphs",
    "graph_table",
    "plot_graphs",
    "plot_cluster_means",
    "lloyd",
    "KQGrid",
    "k_q_grids",
    "plot_k_q",
    "agreement",
    "largest_share",
    "plot_agreement",
    "CLUSTERINGS",
    "committed_rows",
    "committed_stability",
    "plot_committed",
    "verdict",
]

# the committed grid run's Cluster-CAM settings, one per clustering (bn2, Q = 8, α = 0.8, normalised coupling)
CLUSTERINGS = {"spectral": "spectral", "K-means": "kmeans", "Ward": "ward"}
_SETTING = "clustercam:alpha=0.8;clustering={};coupling=normalized;n_clusters=8"
_METRICS = ("drop", "increase", "insertion", "deletion")
_WHAT = {"drop": "confidence drop", "deletion": "deletion AUC"}


# --- §1–2: the toy graph -------------------------------------------------------------------------


@dataclass
class ToyGraph:
    """Two Gaussian clouds of points, their graph (eq 17, 11, 13) and the spectrum of its L."""

    points: torch.Tensor
    truth: torch.Tensor
    kappa: float
    tau: float
    sigma: float
    distances: torch.Tensor
    similarity: torch.Tensor
    adjacency: torch.Tensor
    laplacian: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor


def toy_graph(seed: int = 0, n: int = 30, kappa: float = 0.3, tau: float = 1.0) -> ToyGraph:
    """``n`` points around (0, 0) and ``n`` around (4, 1) (SD 0.6), the similarity of eq 17 with
    σ = the median distance, the adjacency of eq 11 thresholded at ``kappa``, and the
    unnormalised Laplacian of eq 13 with its eigendecomposition (eq 15)."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([4.0, 1.0])
    pts = torch.cat([torch.randn(n, 2, generator=g) * 0.6, torch.randn(n, 2, generator=g) * 0.6 + centre]).double()
    truth = torch.tensor([0] * n + [1] * n)
    d = C.pairwise_distances(pts)
    s, sigma = C.similarity(d)
    a = C.adjacency(s, d, "paper", kappa=kappa, tau=tau)
    lap = C.laplacian(a, "unnormalized")
    vals, vecs, _ = C.spectral_embedding(lap, 2)
    return ToyGraph(pts, truth, kappa, tau, sigma, d, s, a, lap, vals, vecs)


def relaxation_checks(toy: ToyGraph) -> dict[str, float]:
    """The statements of the derivation, measured on ``toy``: rows of L sum to 0; u_1 of L is
    constant; the sign of the Fiedler vector u_2 recovers the two groups (share of vertices);
    u_1 of L_N is ∝ D^½·1 (``|cosine|``); the true groups' RatioCut equals tr(HᵀLH) and lies above
    λ_1 + λ_2 (Ky Fan), which [u_1 u_2] attains; NCut = tr(HᵀL_N H); and the NCut gain."""
    lap, a, truth = toy.laplacian, toy.adjacency, toy.truth
    u = toy.eigenvectors
    split = (u[:, 1] > 0).long()
    agree = float((split == truth).double().mean())
    _, vecs_n, _ = C.spectral_embedding(C.laplacian(a, "normalized"), 1)
    d_half = C.degree(a).sqrt()
    h = C.indicator_matrix(truth)
    h_n = C.indicator_matrix(truth, C.degree(a))
    q = h.shape[1]
    off = ~torch.eye(len(a), dtype=torch.bool)
    return {
        "row_sum": float(lap.sum(1).abs().max()),
        "edges_kept": float((a[off] > 0).double().mean()),
        "u1_spread": float(u[:, 0].max() - u[:, 0].min()),
        "fiedler_agreement": max(agree, 1.0 - agree),
        "un1_spread": float(vecs_n[:, 0].max() - vecs_n[:, 0].min()),
        "un1_cosine": float((vecs_n[:, 0] @ d_half).abs() / d_half.norm()),
        "ratio_cut": C.cut_value(a, truth, "ratio"),
        "trace_h": float(torch.trace(h.T @ lap @ h)),
        "ky_fan": float(toy.eigenvalues[:q].sum()),
        "trace_relaxed": float(torch.trace(u[:, :q].T @ lap @ u[:, :q])),
        "ncut": C.cut_value(a, truth),
        "trace_h_normalized": float(torch.trace(h_n.T @ C.laplacian(a) @ h_n)),
        "ncut_gain": C.ncut_gain(a, truth),
        "largest_gap": float(C.largest_eigengap(toy.eigenvalues)),
    }


def plot_toy_graph(toy: ToyGraph) -> Figure:
    """The toy's points coloured by group, its similarity S (eq 17) and its adjacency A (eq 11)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    axes[0].scatter(toy.points[:, 0].numpy(), toy.points[:, 1].numpy(), c=toy.truth.numpy(), cmap="coolwarm", s=18)
    axes[0].set(title=f"{len(toy.points)} vertices, two groups", xlabel="x₁", ylabel="x₂")
    for ax, m, title, label in (
        (axes[1], toy.similarity, f"similarity S, eq 17 (σ = {toy.sigma:.2f})", "S"),
        (axes[2], toy.adjacency, f"adjacency A, eq 11 (κ = {toy.kappa}, τ = {toy.tau:g})", "A"),
    ):
        im = ax.imshow(m.numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set(title=title, xlabel="vertex j", ylabel="vertex i")
        fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    return fig


def plot_toy_spectrum(toy: ToyGraph) -> Figure:
    """The ten smallest eigenvalues of the toy's L, and its Fiedler vector coloured by group."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.3), layout="constrained")
    gap = C.largest_eigengap(toy.eigenvalues)
    axes[0].plot(range(1, 11), toy.eigenvalues[:10].numpy(), "o-")
    axes[0].set(title=f"smallest eigenvalues of L: largest gap after λ_{gap}", xlabel="index k", ylabel="λ_k")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    colours = np.where(toy.truth.numpy() == 0, "tab:blue", "tab:red")
    axes[1].bar(range(len(toy.truth)), toy.eigenvectors[:, 1].numpy(), color=colours)
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(title="Fiedler vector u₂ (bar colour: the true group)", xlabel="vertex", ylabel="u₂")
    return fig


# --- §3: real feature maps --------------------------------------------------------------------------


def capture_maps(module: torch.nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The activations (B × N × h × w, float32 on the CPU) of each of ``layers`` for the batch
    ``x``, from one forward pass of ``module``."""
    with torch.no_grad(), ExitStack() as stack:
        caps = {name: stack.enter_context(capture(module, name)) for name in dict.fromkeys(layers)}
        module(x)
    return {name: cap.activations.detach().float().cpu() for name, cap in caps.items()}


def paper_scale(res: C.SpectralResult, tau: float = 1.0, kappa: float = 0.0) -> dict[str, float]:
    """What eq 17 as printed (σ = 1) makes of the distances of ``res``: the share of pairs whose
    similarity is below 1e-6 (and exactly 0), the share of edges eq 11 keeps, and the range of
    their weights against the floor e^(−1/τ); the same share below 1e-6 at ``res``'s own σ."""
    off = ~torch.eye(len(res.distances), dtype=torch.bool)
    s, _ = C.similarity(res.distances, 1.0)
    a = C.adjacency(s, res.distances, "paper", kappa=kappa, tau=tau)[off]
    kept = a[a > 0]
    return {
        "tiny": float((s[off] < 1e-6).float().mean()),
        "zero": float((s[off] == 0).float().mean()),
        "kept": kept.numel() / a.numel(),
        "w_min": float(kept.min()) if kept.numel() else math.nan,
        "w_max": float(kept.max()) if kept.numel() else math.nan,
        "floor": math.exp(-1 / tau),
        "tiny_own_sigma": float((res.similarity[off] < 1e-6).float().mean()),
        "median_distance": float(res.distances[off].median()),
    }


def plot_real_graph(res: C.SpectralResult, n_clusters: int) -> Figure:
    """One image's spectral clustering: S with the maps sorted by cluster, the spectrum of L_N,
    and the first two coordinates of the embedding (eq 16) coloured by cluster."""
    order = torch.argsort(res.labels, stable=True)
    gap = C.largest_eigengap(res.eigenvalues)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    im = axes[0].imshow(res.similarity[order][:, order].cpu().numpy(), cmap="viridis")
    fig.colorbar(im, ax=axes[0], shrink=0.8, label=f"S (σ = {res.sigma:.3g})")
    axes[0].set(title=f"S, maps sorted by cluster (Q = {n_clusters})", xlabel="map j", ylabel="map i")
    axes[1].plot(range(1, 21), res.eigenvalues[:20].numpy(), "o-")
    axes[1].set(title=f"spectrum of L_N: largest gap after λ_{gap}", xlabel="index k", ylabel="λ_k")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    emb = res.embedding.cpu()
    second = emb[:, 1] if emb.shape[1] > 1 else torch.zeros(len(emb))
    axes[2].scatter(emb[:, 0].numpy(), second.numpy(), c=res.labels.cpu().numpy(), cmap="tab10", s=12)
    axes[2].set(title=f"embedding (eq 16), first 2 of K = {emb.shape[1]}; colour = cluster", xlabel="u₂")
    axes[2].set_ylabel("u₃" if emb.shape[1] > 1 else "(K = 1: no u₃)")
    axes[2].xaxis.set_major_locator(MaxNLocator(5))
    return fig


# --- §4: the measured graphs --------------------------------------------------------------------------


@dataclass
class ImageGraph:
    """One image's graph at one layer, and every clustering of its maps (``runs``)."""

    n_maps: int
    runs: C.ClusteringRuns
    gap: int
    eigenvalues: np.ndarray
    kpca_cos: float
    floor: float  # share of a vertex's degree that eq 11's floor e^(−1/τ) gives (κ = 0)
    weight_cv: float
    zero_maps: int
    d_over_sigma: np.ndarray
    weights: np.ndarray

    @property
    def gain(self) -> float:
        """NCut gain of the first spectral (L_N) partition."""
        return C.ncut_gain(self.runs.adjacency, self.runs.labels[C.CLUSTERING_NAMES[0]][0])


def measure_graphs(
    activations: Mapping[str, torch.Tensor],
    n_clusters: int,
    n_eigvecs: int,
    seeds: Sequence[int],
    sigma: float | None = None,
    kappa: float = 0.0,
    tau: float = 1.0,
) -> dict[str, list[ImageGraph]]:
    """Per layer of ``activations`` and per image: the graph of its flattened maps and every
    clustering of :func:`camlab.clustering.clustering_runs` over ``seeds``."""
    out: dict[str, list[ImageGraph]] = {}
    for name, acts in activations.items():
        per_image = []
        for maps in acts:
            r = maps.flatten(1)
            runs = C.clustering_runs(r, n_clusters, n_eigvecs, seeds, sigma=sigma, kappa=kappa, tau=tau)
            dec = runs.decompositions["normalized"]
            o = ~torch.eye(len(r), dtype=torch.bool)
            a, deg = dec.adjacency[o], C.degree(dec.adjacency)
            floor = float((math.exp(-1 / tau) * (len(r) - 1) / deg).mean()) if kappa <= 0 else math.nan
            per_image.append(
                ImageGraph(
                    len(r),
                    runs,
                    C.largest_eigengap(dec.eigenvalues),
                    dec.eigenvalues[:21].numpy(),
                    C.kernel_pca_cosine(dec, min(n_eigvecs, len(r) - 2)),
                    floor,
                    float(a.std() / a.mean()),
                    int((r.abs().amax(1) == 0).sum()),
                    (dec.distances[o] / dec.sigma).numpy(),
                    a.numpy(),
                )
            )
        out[name] = per_image
    return out


def _iv(values: Sequence[float], digits: int = 2) -> str:
    i = mean_interval(values)
    return f"{i.mean:.{digits}f} [{i.lo:.{digits}f}, {i.hi:.{digits}f}]"


def graph_table(measured: Mapping[str, Sequence[ImageGraph]]) -> str:
    """A plain-text table, one row per layer: maps, images, how many have their largest
    eigengap after λ_1, the floor's share of a degree, the weights' coefficient of variation,
    all-zero maps, the cosine between the embedding and the kernel PCA of A, and the NCut gain
    (means with 95 % intervals)."""
    head = (
        "layer",
        "maps",
        "gap after λ₁",
        "floor % of degree",
        "CV of weights",
        "all-zero maps",
        "cosine to kernel PCA",
        "NCut gain",
    )
    rows = [head]
    for name, ps in measured.items():
        rows.append(
            (
                name,
                str(ps[0].n_maps),
                f"{sum(p.gap == 1 for p in ps)} of {len(ps)}",
                _iv([100 * p.floor for p in ps], 0),
                _iv([p.weight_cv for p in ps]),
                _iv([p.zero_maps for p in ps], 0),
                _iv([p.kpca_cos for p in ps], 3),
                _iv([p.gain for p in ps], 3),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths, strict=True)))

    lines = [line(r) for r in rows]
    return "\n".join(lines)


def plot_graphs(measured: Mapping[str, Sequence[ImageGraph]], tau: float = 1.0) -> Figure:
    """Small multiples, one row per layer: the distances d/σ and the edge weights of the first
    image, and the spectra of L_N of every image."""
    fig, axes = plt.subplots(len(measured), 3, figsize=(13, 3.1 * len(measured)), layout="constrained", squeeze=False)
    for row, (name, ps) in enumerate(measured.items()):
        ax = axes[row]
        ax[0].hist(ps[0].d_over_sigma, bins=60, color="C0")
        ax[0].set(title=f"{name}: d/σ between the maps of image 1", xlabel="d / σ", ylabel="pairs")
        ax[1].hist(ps[0].weights, bins=60, color="C1")
        ax[1].axvline(math.exp(-1 / tau), color="k", ls=":", label="floor e^(−1/τ)")
        ax[1].set(title=f"{name}: edge weights A (eq 11), image 1", xlabel="A(i, j)", ylabel="pairs")
        ax[1].legend(fontsize=8)
        for p in ps:
            ax[2].plot(range(1, len(p.eigenvalues) + 1), p.eigenvalues, "-", lw=0.9, alpha=0.8)
        ax[2].set(title=f"{name}: spectrum of L_N, one line per image", xlabel="index k", ylabel="λ_k")
        ax[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def plot_cluster_means(image: Any, reps: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]) -> Figure:
    """The mean map of each cluster (eq 18), upsampled and min–max scaled, over ``image``."""
    from ...core.maps import normalize_maps, upsample
    from ..plot import heat_colorbar, overlay

    q = reps.shape[0]
    sizes = torch.bincount(labels, minlength=q).tolist()
    fig, axes = plt.subplots(1, q, figsize=(1.9 * q + 0.8, 2.3), layout="constrained", squeeze=False)
    for k, ax in enumerate(axes[0]):
        heat = normalize_maps(upsample(reps[k : k + 1], size))[0].cpu()
        overlay(image, heat, ax=ax, title=f"cluster {k} ({sizes[k]} maps)")
    heat_colorbar(fig, axes[0])
    return fig


def lloyd(x: torch.Tensor, init: torch.Tensor, max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Lloyd's algorithm, as the paper describes K-means (§3.1): assign each row of ``x`` to the
    nearest mean, recompute the means, stop when no row moves. Returns ``(labels, centres,
    iterations)``; an empty cluster keeps its mean.

    >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    >>> lloyd(x, x[[0, 2]])[0].tolist()
    [0, 0, 1, 1]
    """
    centres = init.clone()
    labels = torch.full((len(x),), -1)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (returned)
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
        centres = torch.stack([x[labels == q].mean(0) if (labels == q).any() else c for q, c in enumerate(centres)])
    return labels, centres, iterations


# --- §5: K against Q ---------------------------------------------------------------------------------


@dataclass
class KQGrid:
    """At one layer: ``k`` the K compared at Q = ``n_clusters``, ``by_k`` (images × K × K) the ARI
    between the partitions at two K (diagonal: between seeds at one K), and ``seeds`` (Q × K ×
    images) the ARI between seeds over the grid ``qs`` × ``ks`` (NaN where Q or K does not fit)."""

    k: list[int]
    by_k: np.ndarray
    seeds: np.ndarray


def k_q_grids(
    measured: Mapping[str, Sequence[ImageGraph]],
    n_clusters: int,
    ks: Sequence[int],
    qs: Sequence[int],
    seeds: Sequence[int],
) -> dict[str, KQGrid]:
    """:class:`KQGrid` per layer, from the L_N decompositions of :func:`measure_graphs`."""
    out = {}
    for name, ps in measured.items():
        n = ps[0].n_maps
        kk = [k for k in sorted(set(ks)) if 1 <= k < n]
        by_k, grid = [], np.full((len(qs), len(ks), len(ps)), np.nan)
        for i, p in enumerate(ps):
            dec = p.runs.decompositions["normalized"]
            runs = {k: [C.spectral_labels(dec, n_clusters, k, s).labels for s in seeds] for k in kk}
            by_k.append(C.agreement_matrix(runs)[1])
            for a, q in enumerate(qs):
                for b, k in enumerate(ks):
                    if q <= n and 1 <= k < n:
                        labs = runs[k] if q == n_clusters else [C.spectral_labels(dec, q, k, s).labels for s in seeds]
                        grid[a, b, i] = C.mean_pairwise_ari(labs)
        out[name] = KQGrid(kk, np.stack(by_k), grid)
    return out


def _matrix(ax, mat: np.ndarray, xs: Sequence, ys: Sequence, nan_text: str = "") -> Any:
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(mat):
        text = nan_text if np.isnan(v) else f"{v:.2f}"
        ax.text(c, r, text, ha="center", va="center", fontsize=8, color="black" if np.isnan(v) or v >= 0.6 else "white")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    return im


def plot_k_q(grids: Mapping[str, KQGrid], n_clusters: int, ks: Sequence[int], qs: Sequence[int]) -> Figure:
    """One row per layer. Left: K varies at the fixed Q = ``n_clusters`` — the ARI between the
    partitions at two K (diagonal: two seeds at one K). Right: Q and K both vary — the ARI between
    seeds at each (Q, K), with the cells K = Q − 1 framed in red."""
    fig, axes = plt.subplots(len(grids), 2, figsize=(12, 4.4 * len(grids)), layout="constrained", squeeze=False)
    im = None
    for row, (name, g) in enumerate(grids.items()):
        left, right = axes[row]
        im = _matrix(left, np.nanmean(g.by_k, 0), g.k, g.k)
        left.set(
            xlabel="K (eigenvectors)",
            ylabel="K (eigenvectors)",
            title=f"{name}: K varies, Q = {n_clusters} fixed\nARI between two K (diagonal: two seeds)",
        )
        with np.errstate(all="ignore"):
            _matrix(right, np.nanmean(g.seeds, 2) if np.isfinite(g.seeds).any() else g.seeds[..., 0], ks, qs)
        right.set(
            xlabel="K (eigenvectors)",
            ylabel="Q (clusters)",
            title=f"{name}: Q and K vary\nARI between two seeds (red frame: K = Q − 1)",
        )
        for a, q in enumerate(qs):
            if q - 1 in ks:
                right.add_patch(plt.Rectangle((list(ks).index(q - 1) - 0.5, a - 0.5), 1, 1, fill=False, ec="red", lw=2))
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="adjusted Rand index")
    return fig


# --- §6: the clusterings against one another ------------------------------------------------------------


def agreement(measured: Mapping[str, Sequence[ImageGraph]]) -> dict[str, np.ndarray]:
    """Per layer, images × 4 × 4: the ARI between the clusterings of
    :data:`camlab.clustering.CLUSTERING_NAMES` (diagonal: between two seeds; NaN for Ward)."""
    return {name: np.stack([C.agreement_matrix(p.runs.labels)[1] for p in ps]) for name, ps in measured.items()}


def largest_share(measured: Mapping[str, Sequence[ImageGraph]]) -> dict[str, dict[str, float]]:
    """Per layer and clustering of :data:`camlab.clustering.CLUSTERING_NAMES`: the mean share (%)
    of the maps that fall into the largest cluster (first seed), over the images."""
    out: dict[str, dict[str, float]] = {}
    for name, ps in measured.items():
        out[name] = {
            m: float(np.mean([100 * float(torch.bincount(p.runs.labels[m][0]).max()) / p.n_maps for p in ps]))
            for m in C.CLUSTERING_NAMES
        }
    return out


def plot_agreement(agree: Mapping[str, np.ndarray], n_clusters: int) -> Figure:
    """One panel per layer: the mean ARI between clusterings over the images (diagonal: seeds)."""
    names = list(C.CLUSTERING_NAMES)
    fig, axes = plt.subplots(1, len(agree), figsize=(5.2 * len(agree) + 0.8, 4.4), layout="constrained", squeeze=False)
    im = None
    for ax, (name, mats) in zip(axes[0], agree.items(), strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ward's diagonal: the mean of NaNs stays NaN
            mat = np.nanmean(mats, 0)
        im = _matrix(ax, mat, names, names, nan_text="no seed")
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_title(
            f"{name}: ARI between clusterings, Q = {n_clusters}\n(diagonal: two seeds of one method)", fontsize=10
        )
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="adjusted Rand index")
    return fig


# --- the committed 200-image grid run -------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def committed_rows(committed: str | Path, model: str = "efficientnet_lite0") -> list[dict[str, Any]]:
    """The per-image rows of the committed grid run (``grid_<model>.csv``) for Cluster-CAM with
    each of :data:`CLUSTERINGS` at the same setting, the method renamed to the clustering's name."""
    names = {_SETTING.format(v): k for k, v in CLUSTERINGS.items()}
    rows = _read(Path(committed) / f"grid_{model}.csv")
    return [{**r, "method": names[r["method"]]} for r in rows if r["method"] in names]


def committed_stability(committed: str | Path, model: str = "efficientnet_lite0") -> dict[str, dict[str, float]]:
    """Per clustering of :data:`CLUSTERINGS`: the committed run's mean ARI between seeds'
    partitions (``ari``) and mean correlation between seeds' heatmaps (``corr``), seeds 0–4
    (``grid_<model>_stability.csv``)."""
    names = {_SETTING.format(v): k for k, v in CLUSTERINGS.items()}
    rows = _read(Path(committed) / f"grid_{model}_stability.csv")
    return {names[r["method"]]: {k: float(r[k]) for k in ("ari", "corr")} for r in rows if r["method"] in names}


def _differences(rows: list[dict[str, Any]], method: str, reference: str, metric: str):
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = as_number(r[metric])
    images = [i for i in by[method] if i in by[reference]]
    return paired_difference([by[method][i] for i in images], [by[reference][i] for i in images])


def plot_committed(rows: list[dict[str, Any]], stability: Mapping[str, Mapping[str, float]]) -> Figure:
    """Left: the committed run's seed stability per clustering (ARI between seeds' partitions,
    correlation between seeds' heatmaps). Right four panels: the paired difference, spectral
    minus K-means and spectral minus Ward, per metric, with 95 % intervals (drop and increase in
    % points)."""
    ratios = {"width_ratios": [1.6, 1, 1, 1, 1]}
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4), layout="constrained", gridspec_kw=ratios)
    names = list(CLUSTERINGS)
    xs = np.arange(len(names))
    for j, (key, label) in enumerate((("ari", "ARI of partitions"), ("corr", "heatmap correlation"))):
        axes[0].bar(xs + (j - 0.5) * 0.38, [stability[n][key] for n in names], width=0.38, label=label)
    axes[0].set_xticks(xs, names)
    axes[0].set(ylim=(0, 1.3), ylabel="mean between two seeds", title="seed stability (5 seeds)")
    axes[0].legend(fontsize=8, loc="upper center", ncol=2)
    n_images = len({r["image"] for r in rows})
    for ax, metric in zip(axes[1:], _METRICS, strict=True):
        scale = 100 if metric in ("drop", "increase") else 1
        for j, ref in enumerate(("K-means", "Ward")):
            d = _differences(rows, "spectral", ref, metric)
            ax.errorbar(
                [j],
                [scale * d.mean],
                yerr=[[scale * (d.mean - d.lo)], [scale * (d.hi - d.mean)]],
                fmt="o",
                color=f"C{j + 2}",
                capsize=4,
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks([0, 1], ["− K-means", "− Ward"])
        ax.set_xlim(-0.6, 1.6)
        ax.set(title=f"{metric}: spectral − other", ylabel="paired difference" + (" (points)" if scale == 100 else ""))
    fig.suptitle(
        f"Cluster-CAM with three clusterings, {n_images} dev images (bn2, Q = 8, α = 0.8, normalised eq 22'): "
        "dots are means, bars 95 % intervals",
        fontsize=10,
    )
    return fig


# --- the verdict ---------------------------------------------------------------------------------


def verdict(
    committed: str | Path | None,
    measured: Mapping[str, Sequence[ImageGraph]] | None = None,
    layer: str | None = None,
    model: str = "efficientnet_lite0",
) -> Verdict:
    """The chapter's verdict. From the committed grid run (``committed``; ``None`` skips it):
    Cluster-CAM's confidence drop and deletion AUC with spectral clustering against K-means and
    against Ward (paired over the images; one family of four tests, Holm's correction in the
    notes), and Ward's seed-freedom (exact). From the live partitions ``measured`` at ``layer``
    (default: the last layer measured): L against L_N (paper §3.1, "very similar"), spectral
    against K-means, the seed dependence of each, and the eigengap (exact)."""
    claims, notes = [], []
    if committed is not None:
        rows = committed_rows(committed, model)
        n = len({r["image"] for r in rows})
        family = [("drop", "K-means"), ("deletion", "K-means"), ("drop", "Ward"), ("deletion", "Ward")]
        for metric, ref in family:
            scale, unit = (100, "points") if metric == "drop" else (1, "")
            claims.append(
                rows_claim(
                    rows,
                    "spectral",
                    ref,
                    metric,
                    label=f"{metric} vs {ref}",
                    scale=scale,
                    unit=unit,
                    claim=f"workbook: Cluster-CAM with spectral clustering has a lower {_WHAT[metric]} than with "
                    f"{ref} (spectral − {ref}, {n} images)",
                )
            )
        p = holm([_differences(rows, "spectral", ref, metric).p for metric, ref in family])
        stab = committed_stability(committed, model)
        claims.append(
            exact_claim(
                "Ward seed-free",
                "workbook: Ward's clustering has no seed — ARI and heatmap "
                "correlation between seeds are 1 (committed run)",
                stab["Ward"]["ari"],
                stab["Ward"]["ari"] == 1.0 and stab["Ward"]["corr"] == 1.0,
            )
        )
        drop_k, del_k, drop_w, del_w = claims[:4]
        notes.append(
            (
                f"On {n} dev images the confidence drop with spectral clustering is {drop_k.outcome} from "
                f"K-means' and {drop_w.outcome} from Ward's.",
                {drop_k.label: drop_k.outcome, drop_w.label: drop_w.outcome},
            )
        )
        notes.append(
            (
                f"Its lower deletion AUC ({del_k.value:+.3f} against K-means, {del_w.value:+.3f} against Ward) "
                f"is {del_k.outcome} against K-means and {del_w.outcome} against Ward by the 95 % intervals, "
                "but as one family of four "
                f"tests Holm's correction leaves p = {p[1]:.2g} and {p[3]:.2g}, not a finding at the 5 % "
                "level.",
                {del_k.label: del_k.outcome, del_w.label: del_w.outcome},
            )
        )
    if measured:
        layer = layer or list(measured)[-1]
        ps = measured[layer]
        ari = np.stack([C.agreement_matrix(p.runs.labels)[1] for p in ps])  # images × 4 × 4
        ln, lu, km = 0, 1, 2
        c_l = paired_claim(
            "L vs L_N",
            f"paper §3.1: L and L_N give 'very similar' partitions — ARI(L, L_N) minus "
            f"the ARI of two seeds of L_N ({layer})",
            ari[:, ln, lu],
            ari[:, ln, ln],
            expect=1,
        )
        c_k = paired_claim(
            "spectral vs K-means",
            "workbook: spectral clustering and K-means give different "
            f"partitions — ARI(spectral, K-means) minus the ARI of two K-means seeds ({layer})",
            ari[:, ln, km],
            ari[:, km, km],
            expect=-1,
        )
        c_s = paired_claim(
            "seed dependence",
            "workbook: the spectral partition depends less on the seed than "
            f"K-means' — ARI between seeds, spectral minus K-means ({layer})",
            ari[:, ln, ln],
            ari[:, km, km],
            expect=1,
        )
        wd = 3
        c_w = paired_claim(
            "Ward vs spectral",
            "workbook: Ward's partition is closer to K-means' than to spectral's "
            f"— ARI(spectral, Ward) minus ARI(K-means, Ward) ({layer})",
            ari[:, ln, wd],
            ari[:, km, wd],
            expect=-1,
        )
        at_1 = sum(p.gap == 1 for p in ps)
        c_g = exact_claim(
            "no eigengap",
            f"workbook: the largest eigengap of L_N follows λ₁ in every image ({layer}): no cluster structure",
            at_1,
            at_1 == len(ps),
            n=len(ps),
        )
        claims += [c_l, c_k, c_w, c_s, c_g]
        notes.append(
            (
                f"On {len(ps)} images at {layer}, the paper's 'very similar' for L and L_N is {c_l.outcome} "
                f"(ARI difference {c_l.value:+.2f}).",
                {c_l.label: c_l.outcome},
            )
        )
        notes.append(
            (
                f"That spectral and K-means partitions differ by more than K-means' seeds do is {c_k.outcome}, "
                f"that Ward's is closer to K-means' is {c_w.outcome}, and spectral's lower seed dependence is "
                f"{c_s.outcome}.",
                {c_k.label: c_k.outcome, c_w.label: c_w.outcome, c_s.label: c_s.outcome},
            )
        )
        notes.append(
            (
                f"The largest eigengap follows λ₁ in {at_1} of {len(ps)} images: the claim that the graph has "
                f"no cluster structure is {c_g.outcome}.",
                {c_g.label: c_g.outcome},
            )
        )
    return make_verdict(claims, notes)
