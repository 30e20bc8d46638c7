"""Clustering feature maps (Feng et al. 2023, eq 10–17): K-means, Ward's agglomerative clustering, and spectral
clustering as separate steps.

Every function works on the rows of a matrix ``X`` (n × d) — for Cluster-CAM, the N flattened
feature maps of one image — in torch, on ``X``'s device. The spectral path is cut into the steps
of the paper so that notebook 04 can show each one:

1. :func:`pairwise_distances`  ``d(i,j) = ||x_i − x_j||``
2. :func:`similarity`          eq 17, ``S = exp(−d / σ)``
3. :func:`adjacency`           eq 11 (``"paper"``) or eq 12 (``"gaussian"``), thresholded at κ
4. :func:`degree`, :func:`laplacian`   eq 13 (unnormalised) or eq 14 (normalised)
5. :func:`spectral_embedding`  eq 15–16, eigenvectors u_2 … u_{K+1}
6. :func:`kmeans` on the embedding

(:func:`spectral_decomposition` = steps 1–5, :func:`spectral_labels` = steps 6–7.)

:func:`spectral_clustering` runs them all and returns every intermediate; Cluster-CAM calls the
same function.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import math

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
]

ADJACENCIES = ("paper", "gaussian")
LAPLACIANS = ("unnormalized", "normalized")


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
        cand = torch.multinomial(weights.cpu().double(), trials, replacement=True, generator=gen).to(x.device)  # runs×trials
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


def kmeans(x: torch.Tensor, k: int, seed: int = 0, n_init: int = 3, max_iter: int = 100, tol: float = 1e-6) -> KMeansResult:
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
    wraps the same linkage (the tests compare the two), without its 0.3 ms of input checks.

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
    """Eq 17: ``S = exp(−d / σ)``. ``σ=None`` uses the median off-diagonal distance.

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


def adjacency(s: torch.Tensor, d: torch.Tensor | None = None, kind: str = "paper", kappa: float = 0.0, tau: float = 1.0) -> torch.Tensor:
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


def spectral_labels(decomposition: SpectralResult, n_clusters: int, n_eigvecs: int, seed: int = 0, n_init: int = 3) -> SpectralResult:
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
