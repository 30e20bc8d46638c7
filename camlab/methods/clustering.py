"""Clustering feature maps (Feng et al. 2023, eq 10–17): K-means, Ward's agglomerative clustering, and spectral
clustering as separate steps.

Every function works on the rows of a matrix ``X`` (n × d) — for Cluster-CAM, the N flattened
feature maps of one image — in torch, on ``X``'s device. The spectral path is cut into the steps
of the paper so that notebook 04 can show each one:

1. :func:`pairwise_distances`  ``d(i,j) = ||x_i − x_j||``
2. :func:`similarity`          eq 17 with camlab's scale σ, ``S = exp(−d / σ)``
3. :func:`adjacency`           eq 11 (``"paper"``) or eq 12 (``"gaussian"``), thresholded at κ
4. :func:`degree`, :func:`laplacian`   eq 13 (unnormalised) or eq 14 (normalised)
5. :func:`spectral_embedding`  eq 15–16, eigenvectors u_2 … u_{K+1}
6. :func:`kmeans` on the embedding

(:func:`spectral_decomposition` = steps 1–5, :func:`spectral_labels` = steps 6–7.)

:func:`spectral_clustering` runs them all and returns every intermediate; Cluster-CAM calls the
same function.

Eq 17 as the paper prints it is ``S = exp(−‖F_i − F_j‖)``, with no scale; the σ of
:func:`similarity` is camlab's (``σ = 1`` is the paper's formula, the default is the median
distance). The paper names κ and τ (eq 11) without giving values; camlab's defaults are 0 and 1.

For notebook 04's measurements of what the spectral derivation buys on real feature maps:
:func:`cut_value` (ratio and normalised cut), :func:`indicator_matrix` (the relaxation's
``H``, with ``tr(Hᵀ L H)`` = the cut), :func:`ncut_gain` (how far a partition's normalised cut
lies below that of a graph with equal weights), :func:`largest_eigengap`,
:func:`kernel_pca_cosine` (how close the embedding is to the kernel PCA of the adjacency),
:func:`clustering_runs` (every clustering camlab offers, over seeds) and
:func:`agreement_matrix` / :func:`mean_pairwise_ari` / :func:`adjusted_rand_index` (how alike
two partitions are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "KMeansResult",
    "kmeans",
    "ward",
    "pairwise_distances",
    "similarity",
    "adjacency",
    "degree",
    "laplacian",
    "spectral_embedding",
    "SpectralResult",
    "spectral_decomposition",
    "spectral_labels",
    "spectral_clustering",
    "ADJACENCIES",
    "LAPLACIANS",
    "CUTS",
    "cut_value",
    "indicator_matrix",
    "ncut_gain",
    "largest_eigengap",
    "kernel_pca_cosine",
    "adjusted_rand_index",
    "mean_pairwise_ari",
    "agreement_matrix",
    "ClusteringRuns",
    "clustering_runs",
    "CLUSTERING_NAMES",
]

ADJACENCIES = ("paper", "gaussian")
LAPLACIANS = ("unnormalized", "normalized")
CUTS = ("ratio", "normalized")


@dataclass
class KMeansResult:
    labels: torch.Tensor  # (n,) long, every cluster non-empty
    centers: torch.Tensor  # k × d
    inertia: float  # Σ squared distance of each row to its centre
    n_iter: int


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances of the rows of ``x`` (n×d) to those of ``c`` (…×k×d) → …×n×k."""
    return (x.pow(2).sum(-1)[:, None] - 2 * x @ c.transpose(-1, -2) + c.pow(2).sum(-1)[..., None, :]).clamp_min(0)


def _kmeans_pp(x: torch.Tensor, k: int, runs: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (as scikit-learn), for ``runs`` independent restarts at once:
    each new centre is the best of ``2 + ln k`` candidates drawn with probability ∝ squared
    distance to the nearest chosen centre. Returns runs×k×d."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = torch.randint(n, (runs,), generator=gen).to(x.device)
    centers = [first]
    d2 = _sq_dist(x, x[first][:, None])[..., 0]  # runs×n
    rows = torch.arange(runs, device=x.device)
    for _ in range(1, k):
        total = d2.sum(1, keepdim=True)
        # fewer distinct rows than k leaves nothing to weigh by: any row, uniformly
        weights = torch.where(total > 0, d2 / total.clamp_min(1e-30), torch.ones_like(d2))
        cand = torch.multinomial(weights.cpu().double(), trials, replacement=True, generator=gen).to(
            x.device
        )  # runs×trials
        pot = torch.minimum(d2[:, None], _sq_dist(x, x[cand]).transpose(1, 2))  # runs×trials×n
        best = pot.sum(2).argmin(1)
        centers.append(cand[rows, best])
        d2 = pot[rows, best]
    return x[torch.stack(centers, 1)]


def _fill_empty(labels: torch.Tensor, d2: torch.Tensor, counts: torch.Tensor) -> None:
    """Re-seed each empty cluster of one run with the row farthest from its centre among the
    clusters that can spare one (in place)."""
    own = d2.gather(1, labels[:, None])[:, 0].clone()
    for empty in (counts == 0).nonzero().flatten().tolist():
        far = int(torch.where(counts[labels] > 1, own, torch.full_like(own, -1.0)).argmax())
        counts[labels[far]] -= 1
        labels[far] = empty
        counts[empty] += 1
        own[far] = -1.0


def kmeans(
    x: torch.Tensor, k: int, seed: int = 0, n_init: int = 3, max_iter: int = 100, tol: float = 1e-6
) -> KMeansResult:
    """Lloyd's K-means on the rows of ``x`` with k-means++ seeding; the best of ``n_init`` runs.

    The ``n_init`` restarts run side by side as one batched computation (the cost of a restart
    is mostly per-operation overhead on maps this small). A cluster that empties during an
    iteration is re-seeded with the row farthest from its centre, so the result always has
    ``k`` non-empty clusters. Deterministic for a given ``seed``.

    Raises:
        ValueError: ``k`` < 1 or larger than the number of rows.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} clusters of {n} rows: k must be in [1, {n}]")
    x = x.float()
    runs = max(1, int(n_init))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x_sq = x.pow(2).sum(1)
    # tol is relative to the data's total variance (as scikit-learn's)
    scale = tol * max(float(x_sq.sum() - n * x.mean(0).pow(2).sum()) / (n - 1), 1e-30) if n > 1 else 0.0
    centers = _kmeans_pp(x, k, runs, gen)  # runs×k×d
    labels = torch.full((runs, n), -1, dtype=torch.long, device=x.device)
    active = torch.ones(runs, dtype=torch.bool, device=x.device)
    n_iter = torch.zeros(runs, dtype=torch.long, device=x.device)

    def dist(c: torch.Tensor, full: bool = True) -> torch.Tensor:  # runs×n×k, as one matrix product
        cross = (x @ c.reshape(runs * k, -1).T).view(n, runs, k).transpose(0, 1)
        partial = c.pow(2).sum(-1)[:, None, :] - 2 * cross  # enough to find the nearest centre
        return (x_sq[:, None] + partial).clamp_min(0) if full else partial

    for it in range(1, max_iter + 1):
        new = torch.where(active[:, None], dist(centers, full=False).argmin(2), labels)
        member = F.one_hot(new, k).to(x.dtype)  # runs×n×k
        counts = member.sum(1)
        if bool((counts == 0).any()):
            d2, whole = dist(centers), counts.long()
            for r in (whole == 0).any(1).nonzero().flatten().tolist():
                _fill_empty(new[r], d2[r], whole[r])
            member = F.one_hot(new, k).to(x.dtype)
            counts = member.sum(1)
        moved = (new != labels).any(1)
        new_centers = (member.transpose(1, 2) @ x) / counts.clamp_min(1)[..., None]
        shift = (new_centers - centers).pow(2).sum((1, 2))
        centers = torch.where(active[:, None, None], new_centers, centers)
        labels = new
        n_iter = torch.where(active, it, n_iter)
        active = active & moved & (shift > scale)
        if not bool(active.any()):
            break
    inertia = dist(centers).gather(2, labels[..., None])[..., 0].sum(1)
    best = int(inertia.argmin())
    return KMeansResult(labels[best], centers[best], float(inertia[best]), int(n_iter[best]))


def ward(x: torch.Tensor, k: int) -> torch.Tensor:
    """Agglomerative clustering of the rows of ``x`` with Ward linkage (SciPy's
    ``scipy.cluster.hierarchy.ward``, in float64, cut into ``k`` clusters): labels (n,) on ``x``'s
    device — the partition of scikit-learn's ``AgglomerativeClustering(linkage="ward")``, which
    wraps the same linkage (the tests compare the two), without the cost of its input checks.

    Each step merges the two clusters whose union least increases the within-cluster sum of
    squares — the objective K-means minimises — but greedily and without a random start, so the
    result has no seed: the same rows always give the same partition.

    Raises:
        ValueError: ``k`` < 1 or larger than the number of rows.
    """
    from scipy.cluster.hierarchy import cut_tree, fcluster
    from scipy.cluster.hierarchy import ward as ward_linkage

    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} clusters of {n} rows: k must be in [1, {n}]")
    if k == 1 or n == 1:
        return torch.zeros(n, dtype=torch.long, device=x.device)
    tree = ward_linkage(x.detach().double().cpu().numpy())
    labels = fcluster(tree, k, criterion="maxclust") - 1
    if labels.max() + 1 != k:  # merge heights tied at the cut: fcluster stops short of k; cut_tree cuts exactly
        labels = cut_tree(tree, n_clusters=k)[:, 0]
    return torch.as_tensor(labels, dtype=torch.long, device=x.device)


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of ``x`` (n × n, exact zeros on the diagonal)."""
    d = _sq_dist(x.double(), x.double()).sqrt()
    d.fill_diagonal_(0)
    return d.to(x.dtype)


def similarity(d: torch.Tensor, sigma: float | None = None) -> tuple[torch.Tensor, float]:
    """Eq 17 with a scale camlab adds: ``S = exp(−d / σ)`` (the paper prints ``exp(−d)``, i.e.
    σ = 1). ``σ=None`` uses the median off-diagonal distance.

    Returns ``(S, σ)``. ``σ = 1`` is the paper's literal formula, under which almost every
    similarity of raw activations underflows to 0.
    """
    n = d.shape[0]
    if sigma is None:
        off = d[~torch.eye(n, dtype=torch.bool, device=d.device)]
        sigma = float(off.median()) if off.numel() else 1.0
        sigma = sigma if sigma > 0 else 1.0
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return torch.exp(-d / sigma), float(sigma)


def adjacency(
    s: torch.Tensor, d: torch.Tensor | None = None, kind: str = "paper", kappa: float = 0.0, tau: float = 1.0
) -> torch.Tensor:
    """Eq 11 (``"paper"``): ``A = exp(−(1 − S) / τ)``; eq 12 (``"gaussian"``): ``A = exp(−d² / τ²)``.

    Both keep an edge only where ``S > κ``; the diagonal is 0.
    """
    if kind not in ADJACENCIES:
        raise ValueError(f"unknown adjacency {kind!r}; use one of {ADJACENCIES}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if kind == "paper":
        a = torch.exp(-(1 - s) / tau)
    else:
        if d is None:
            raise ValueError("the gaussian adjacency (eq 12) needs the distances d")
        a = torch.exp(-(d**2) / tau**2)
    a = torch.where(s > kappa, a, torch.zeros_like(a))
    a.fill_diagonal_(0)
    return a


def degree(a: torch.Tensor) -> torch.Tensor:
    """Degree of each vertex, ``D(i,i) = Σ_j A(i,j)`` (the diagonal, as a vector)."""
    return a.sum(1)


def laplacian(a: torch.Tensor, kind: str = "normalized") -> torch.Tensor:
    """Eq 13: ``L = D − A``; eq 14: ``L_N = I − D^{-1/2} A D^{-1/2}``.

    In the normalised form an isolated vertex (degree 0) gets degree 1, so its row is that of
    the identity instead of a division by zero.
    """
    if kind not in LAPLACIANS:
        raise ValueError(f"unknown laplacian {kind!r}; use one of {LAPLACIANS}")
    deg = degree(a)
    if kind == "unnormalized":
        return torch.diag(deg) - a
    inv_sqrt = deg.where(deg > 0, torch.ones_like(deg)).rsqrt()
    return torch.eye(a.shape[0], dtype=a.dtype, device=a.device) - inv_sqrt[:, None] * a * inv_sqrt[None, :]


def spectral_embedding(lap: torch.Tensor, n_eigvecs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq 15–16: eigenvalues (ascending), eigenvectors, and the embedding ``B = [u_2 … u_{K+1}]``.

    Raises:
        ValueError: ``n_eigvecs`` < 1 or ≥ the number of vertices.
    """
    n = lap.shape[0]
    if not 1 <= n_eigvecs < n:
        raise ValueError(f"n_eigvecs={n_eigvecs} must be in [1, {n - 1}] for {n} vertices")
    sym = (lap + lap.T) / 2
    vals, vecs = torch.linalg.eigh(sym.double())
    # fix each eigenvector's sign (largest-magnitude entry positive) so results are reproducible
    signs = torch.sign(vecs.gather(0, vecs.abs().argmax(0, keepdim=True)))
    vecs = vecs * torch.where(signs == 0, torch.ones_like(signs), signs)
    return vals.to(lap.dtype), vecs.to(lap.dtype), vecs[:, 1 : n_eigvecs + 1].to(lap.dtype)


@dataclass
class SpectralResult:
    """Every intermediate of spectral clustering, for the derivation notebook."""

    distances: torch.Tensor
    sigma: float
    similarity: torch.Tensor
    adjacency: torch.Tensor
    laplacian: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    embedding: torch.Tensor
    labels: torch.Tensor
    n_components: int  # connected components of the graph


def _n_components(a: torch.Tensor) -> int:
    import scipy.sparse
    import scipy.sparse.csgraph

    graph = scipy.sparse.csr_matrix((a > 0).cpu().numpy())
    return int(scipy.sparse.csgraph.connected_components(graph, directed=False)[0])


def spectral_decomposition(
    x: torch.Tensor,
    laplacian_kind: str = "normalized",
    adjacency_kind: str = "paper",
    sigma: float | None = None,
    kappa: float = 0.0,
    tau: float = 1.0,
) -> SpectralResult:
    """The spectral embedding (Feng et al. 2023, eq 10–16) of the rows of ``x``: everything up to the eigenvectors.

    The result's ``embedding`` and ``labels`` are empty; :func:`spectral_labels` fills them for
    any K and Q without redoing the decomposition (the interactive notebook caches this).

    Raises:
        ValueError: the graph has no edge at all (κ too high for these similarities).
    """
    n = x.shape[0]
    d = pairwise_distances(x.float())
    s, sigma = similarity(d, sigma)
    a = adjacency(s, d, adjacency_kind, kappa, tau)
    if not bool((a > 0).any()):
        off_diagonal = s[~torch.eye(n, dtype=torch.bool, device=s.device)]
        raise ValueError(
            f"the similarity graph has no edge: every similarity is ≤ kappa={kappa} "
            f"(largest off-diagonal similarity {float(off_diagonal.max()):.3g} with sigma={sigma:.3g}); lower kappa"
        )
    lap = laplacian(a, laplacian_kind)
    vals, vecs, _ = spectral_embedding(lap, 1)
    empty = torch.empty(0)
    return SpectralResult(d, sigma, s, a, lap, vals, vecs, empty, empty, _n_components(a))


def spectral_labels(
    decomposition: SpectralResult, n_clusters: int, n_eigvecs: int, seed: int = 0, n_init: int = 3
) -> SpectralResult:
    """Steps 6–7: embed with u_2 … u_{K+1} and run K-means (best of ``n_init``) into Q clusters."""
    n = decomposition.eigenvectors.shape[0]
    if not 1 <= n_eigvecs < n:
        raise ValueError(f"n_eigvecs={n_eigvecs} must be in [1, {n - 1}] for {n} vertices")
    if not 1 <= n_clusters <= n:
        raise ValueError(f"cannot make {n_clusters} clusters of {n} rows")
    emb = decomposition.eigenvectors[:, 1 : n_eigvecs + 1]
    labels = kmeans(emb, n_clusters, seed=seed, n_init=n_init).labels
    return replace(decomposition, embedding=emb, labels=labels)


def spectral_clustering(
    x: torch.Tensor,
    n_clusters: int,
    n_eigvecs: int = 3,
    laplacian_kind: str = "normalized",
    adjacency_kind: str = "paper",
    sigma: float | None = None,
    kappa: float = 0.0,
    tau: float = 1.0,
    seed: int = 0,
    n_init: int = 3,
) -> SpectralResult:
    """Spectral clustering of the rows of ``x`` into ``n_clusters`` (Feng et al. 2023, eq 10–17), with
    every intermediate. A disconnected graph still gives Q non-empty clusters.

    Raises:
        ValueError: the graph has no edge at all (κ too high), or the parameters are out of range.
    """
    n = x.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"cannot make {n_clusters} clusters of {n} rows")
    dec = spectral_decomposition(x, laplacian_kind, adjacency_kind, sigma, kappa, tau)
    return spectral_labels(dec, n_clusters, n_eigvecs, seed, n_init)


# --- what the relaxation optimises, and how partitions compare (notebook 04) ---------------------


def _groups(labels: torch.Tensor) -> torch.Tensor:
    """One-hot membership (n × Q) of the non-empty clusters of ``labels``, as float64."""
    _, inverse = torch.unique(labels, return_inverse=True)
    return (
        F.one_hot(inverse.flatten(), int(inverse.max()) + 1).double()
        if labels.numel()
        else torch.zeros(0, 0, dtype=torch.float64)
    )


def cut_value(a: torch.Tensor, labels: torch.Tensor, kind: str = "normalized") -> float:
    """The cut of the partition ``labels`` of the graph with weights ``a`` (n × n, symmetric).

    ``"ratio"``: ``RatioCut = Σ_j cut(A_j, Ā_j) / |A_j|``; ``"normalized"``:
    ``NCut = Σ_j cut(A_j, Ā_j) / vol(A_j)`` with ``vol(A_j) = Σ_{i∈A_j} D(i,i)`` and
    ``cut(A_j, Ā_j) = Σ_{i∈A_j, k∉A_j} A(i,k)`` (the sums over the non-empty clusters; a
    cluster of isolated vertices, volume 0, adds 0). These are the objectives whose relaxations
    give the eigenvectors of L (eq 13) and L_N (eq 14): ``tr(Hᵀ L H)`` with the indicators of
    :func:`indicator_matrix`.

    >>> a = torch.ones(4, 4) - torch.eye(4)       # complete graph, unit weights
    >>> cut_value(a, torch.tensor([0, 0, 1, 1]))  # 2 × (4 edges cut / volume 6)
    1.3333333333333333
    """
    if kind not in CUTS:
        raise ValueError(f"unknown cut {kind!r}; use one of {CUTS}")
    if a.shape != (labels.numel(), labels.numel()):
        raise ValueError(f"adjacency {tuple(a.shape)} does not match {labels.numel()} labels")
    a = a.double().cpu()
    m = _groups(labels.cpu())
    inside = (m * (a @ m)).sum(0)  # Σ_{i,k ∈ A_j} A(i,k)
    vol = m.T @ a.sum(1)
    cut = vol - inside
    size = m.sum(0) if kind == "ratio" else vol
    return float(torch.where(size > 0, cut / size.clamp_min(1e-300), torch.zeros_like(cut)).sum())


def indicator_matrix(labels: torch.Tensor, degrees: torch.Tensor | None = None) -> torch.Tensor:
    """The relaxation's ``H`` (n × Q, ``HᵀH = I``) for the partition ``labels``.

    Without ``degrees``: columns ``1_{A_j} / √|A_j|`` — then ``tr(Hᵀ L H)`` is the ratio cut.
    With ``degrees`` (``D(i,i)``): columns ``D^{1/2} 1_{A_j} / √vol(A_j)`` — then
    ``tr(Hᵀ L_N H)`` is the normalised cut. Relaxing H to any matrix with orthonormal columns,
    the minimum of the trace is the sum of the Q smallest eigenvalues, attained by the first Q
    eigenvectors u_1 … u_Q (Ky Fan's theorem).

    >>> h = indicator_matrix(torch.tensor([0, 0, 1]))
    >>> torch.allclose(h.T @ h, torch.eye(2, dtype=h.dtype))
    True
    """
    m = _groups(labels.cpu())
    if degrees is None:
        return m / m.sum(0).sqrt()
    d = degrees.double().cpu()
    if bool((d < 0).any()):
        raise ValueError("degrees must be ≥ 0")
    vol = m.T @ d
    if bool((vol <= 0).any()):
        raise ValueError("a cluster has volume 0 (only isolated vertices): its D-weighted indicator is undefined")
    return d.sqrt()[:, None] * m / vol.sqrt()


def ncut_gain(a: torch.Tensor, labels: torch.Tensor) -> float:
    """How far the normalised cut of ``labels`` lies below that of a structureless graph:
    ``1 − NCut / (n(Q − 1)/(n − 1))``.

    On the complete graph with equal weights every partition of the n vertices into Q non-empty
    groups has ``NCut = n(Q − 1)/(n − 1)`` (each group keeps ``(|A_j| − 1)/(n − 1)`` of its
    volume), so the gain is 0 there; it is 1 for a partition along the pieces of a disconnected
    graph. It measures how much cluster structure the graph offers that partition.

    Raises:
        ValueError: fewer than 2 non-empty clusters (no cut to compare).
    """
    n, q = labels.numel(), int(torch.unique(labels).numel())
    if q < 2:
        raise ValueError(f"ncut_gain needs at least 2 non-empty clusters, got {q}")
    return 1.0 - cut_value(a, labels, "normalized") / (n * (q - 1) / (n - 1))


def largest_eigengap(eigenvalues: torch.Tensor, max_k: int = 20) -> int:
    """The k ≤ ``max_k`` (1-based) with the largest gap ``λ_{k+1} − λ_k`` in ``eigenvalues``
    (ascending): the eigengap heuristic's number of clusters — ``k = 1`` says the graph has no
    cluster structure (one piece, nothing smooth beyond u_1).

    >>> largest_eigengap(torch.tensor([0.0, 0.0, 0.9, 1.0]))
    2
    """
    vals = torch.as_tensor(eigenvalues).double().flatten()
    if vals.numel() < 2:
        raise ValueError("need at least 2 eigenvalues for a gap")
    k = max(1, min(int(max_k), vals.numel() - 1))
    gaps = vals[1 : k + 1] - vals[:k]
    return int(gaps.argmax()) + 1


def kernel_pca_cosine(decomposition: SpectralResult, k: int) -> float:
    """How close the spectral embedding ``u_2 … u_{k+1}`` of ``decomposition`` is to the top ``k``
    kernel principal components of its adjacency: the smallest cosine of the principal angles
    between the two k-dimensional subspaces (1: the same subspace; 0: some direction of one is
    orthogonal to the other).

    The kernel principal components are the leading eigenvectors of the doubly centred
    ``C = (I − 11ᵀ/n) A (I − 11ᵀ/n)``. On a regular graph (every degree d) ``L_N = I − A/d``
    and 1 is an eigenvector of A, so the two subspaces coincide wherever the k leading
    eigenvalues stand apart from the rest; on a graph with nearly equal degrees they nearly do —
    spectral clustering is then K-means on kernel principal components. Use the normalised
    Laplacian's decomposition (:func:`spectral_decomposition` with ``"normalized"``).

    Raises:
        ValueError: ``k`` < 1 or ≥ n − 1.
    """
    a = decomposition.adjacency.double().cpu()
    n = a.shape[0]
    if not 1 <= k < n - 1:
        raise ValueError(f"k={k} must be in [1, {n - 2}] for {n} vertices")
    centred = a - a.mean(0, keepdim=True) - a.mean(1, keepdim=True) + a.mean()
    top = torch.linalg.eigh(centred).eigenvectors[:, -k:]
    emb = torch.linalg.qr(decomposition.eigenvectors[:, 1 : k + 1].double().cpu()).Q
    return float(torch.linalg.svdvals(emb.T @ top).min().clamp(0.0, 1.0))


def adjusted_rand_index(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """The adjusted Rand index of two labellings of the same n items (Hubert & Arabie 1985):
    ``(Σ_ij C(n_ij, 2) − E) / (½(Σ_i C(a_i, 2) + Σ_j C(b_j, 2)) − E)`` with
    ``E = Σ_i C(a_i, 2) · Σ_j C(b_j, 2) / C(n, 2)``, n_ij the contingency table and a_i, b_j its
    margins — 1 for the same partition (whatever the numbering), about 0 for independent ones.
    scikit-learn's ``adjusted_rand_score`` to rounding (the tests compare them), from one
    ``bincount`` instead of a sparse contingency matrix: notebook 04 computes thousands.

    >>> adjusted_rand_index(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 2, 2]))
    1.0
    """
    a = np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a).ravel()
    b = np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"labellings of different lengths: {a.size} and {b.size}")
    n = a.size
    if n < 2:
        return 1.0
    ai = np.unique(a, return_inverse=True)[1].ravel()
    bi = np.unique(b, return_inverse=True)[1].ravel()
    width = int(bi.max()) + 1
    table = np.bincount(ai * width + bi).astype(np.float64)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1)).sum() / 2)

    both, rows, cols = (
        pairs(table),
        pairs(np.bincount(ai).astype(np.float64)),
        pairs(np.bincount(bi).astype(np.float64)),
    )
    expected = rows * cols / (n * (n - 1) / 2)
    top = (rows + cols) / 2
    if top == expected:  # both labellings trivial (one cluster, or all singletons): scikit-learn's 1.0
        return 1.0
    return (both - expected) / (top - expected)


def mean_pairwise_ari(labelings: Sequence[torch.Tensor]) -> float:
    """The mean adjusted Rand index over every pair of ``labelings`` (NaN for fewer than 2):
    e.g. the runs of one clustering with different seeds — 1 when the seed never matters."""
    labs = [np.asarray(lab.cpu()) for lab in labelings]
    pairs = [adjusted_rand_index(labs[i], labs[j]) for i in range(len(labs)) for j in range(i + 1, len(labs))]
    return float(np.mean(pairs)) if pairs else math.nan


def agreement_matrix(runs: Mapping[str, Sequence[torch.Tensor]]) -> tuple[list[str], np.ndarray]:
    """Adjusted Rand index between named clusterings, each given as its runs (one per seed).

    Off the diagonal, entry (a, b) is the mean ARI over every pair of a run of ``a`` and a run of
    ``b``; on it, the mean ARI between the runs of ``a`` (:func:`mean_pairwise_ari`: how much
    the seed alone changes ``a``; NaN for a clustering with one run, one without a seed). An
    off-diagonal value near the diagonal's says two settings differ about as much as two seeds.

    >>> names, m = agreement_matrix({"a": [torch.tensor([0, 0, 1, 1])], "b": [torch.tensor([1, 1, 0, 0])]})
    >>> names, float(m[0, 1])
    (['a', 'b'], 1.0)
    """
    names = list(runs)
    labs = {k: [np.asarray(lab.cpu()) for lab in v] for k, v in runs.items()}
    out = np.full((len(names), len(names)), math.nan)
    for i, a in enumerate(names):
        out[i, i] = mean_pairwise_ari(runs[a])
        for j in range(i + 1, len(names)):
            b = names[j]
            out[i, j] = out[j, i] = float(np.mean([adjusted_rand_index(x, y) for x in labs[a] for y in labs[b]]))
    return names, out


CLUSTERING_NAMES = ("spectral, L_N", "spectral, L", "K-means", "Ward")


@dataclass
class ClusteringRuns:
    """Every clustering camlab offers on the same rows: ``labels[name]`` holds one labelling per
    seed (Ward's one, it has no seed); ``decompositions`` the spectral ones by Laplacian kind
    (reuse them for other K and Q with :func:`spectral_labels`); ``adjacency`` the graph (eq 11
    or 12), the same for both Laplacians."""

    labels: dict[str, list[torch.Tensor]]
    decompositions: dict[str, SpectralResult] = field(default_factory=dict)

    @property
    def adjacency(self) -> torch.Tensor:
        return next(iter(self.decompositions.values())).adjacency


def clustering_runs(
    x: torch.Tensor,
    n_clusters: int,
    n_eigvecs: int,
    seeds: Sequence[int] = (0, 1, 2),
    sigma: float | None = None,
    kappa: float = 0.0,
    tau: float = 1.0,
    adjacency_kind: str = "paper",
    n_init: int = 3,
) -> ClusteringRuns:
    """The rows of ``x`` clustered into ``n_clusters`` by spectral clustering on L_N (eq 14)
    and on L (eq 13) with ``n_eigvecs`` eigenvectors, by K-means on the rows themselves, and by
    Ward — each spectral and K-means run once per seed — as :data:`CLUSTERING_NAMES`. One
    eigendecomposition per Laplacian serves every seed.

    >>> runs = clustering_runs(torch.randn(30, 4), 3, 2, seeds=(0, 1))  # doctest: +SKIP
    >>> names, ari = agreement_matrix(runs.labels)                      # doctest: +SKIP
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("clustering_runs needs at least one seed")
    decs = {
        kind: spectral_decomposition(x, kind, adjacency_kind, sigma, kappa, tau)
        for kind in ("normalized", "unnormalized")
    }
    labels = {
        CLUSTERING_NAMES[0]: [
            spectral_labels(decs["normalized"], n_clusters, n_eigvecs, s, n_init).labels for s in seeds
        ],
        CLUSTERING_NAMES[1]: [
            spectral_labels(decs["unnormalized"], n_clusters, n_eigvecs, s, n_init).labels for s in seeds
        ],
        CLUSTERING_NAMES[2]: [kmeans(x, n_clusters, seed=s, n_init=n_init).labels for s in seeds],
        CLUSTERING_NAMES[3]: [ward(x, n_clusters)],
    }
    return ClusteringRuns(labels, decs)
