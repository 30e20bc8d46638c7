"""K-means and the spectral-clustering steps (Feng et al. 2023, eq 10–17)."""

import pytest
import torch

from camlab import clustering as C


def two_clouds(n=40, seed=0, gap=8.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 5, generator=g)
    b = torch.randn(n, 5, generator=g) + gap
    return torch.cat([a, b]), torch.cat([torch.zeros(n), torch.ones(n)]).long()


@pytest.fixture(scope="module")
def real_rows(lite0, real_batch):
    """The 320 flattened 7×7 maps of blocks.6 for a real image."""
    import camlab

    with torch.no_grad(), camlab.capture(lite0.module, "blocks.6") as cap:
        lite0.module(real_batch[:1])
    return cap.activations[0].flatten(1)


@pytest.mark.parametrize("k", [2, 6, 12])
def test_kmeans_inertia_within_1_percent_of_scikit_learn(real_rows, k):
    """Same data, same number of k-means++ restarts (10) on both sides."""
    from sklearn.cluster import KMeans

    ours = C.kmeans(real_rows, k, seed=0, n_init=10)
    ref = KMeans(k, n_init=10, random_state=0).fit(real_rows.numpy())
    assert ours.inertia <= 1.01 * ref.inertia_
    # the inertia it reports is the inertia of its labels
    centers = torch.stack([real_rows[ours.labels == q].mean(0) for q in range(k)])
    assert ours.inertia == pytest.approx(float(((real_rows - centers[ours.labels]) ** 2).sum()), rel=1e-4)


def test_kmeans_is_seeded_and_never_leaves_a_cluster_empty():
    x = torch.cat([torch.zeros(30, 3), torch.ones(2, 3)])  # only two distinct rows
    res = C.kmeans(x, 4, seed=3)
    assert torch.bincount(res.labels, minlength=4).min() >= 1
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    a, b = C.kmeans(x, 5, seed=7), C.kmeans(x, 5, seed=7)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centers, b.centers)  # the same seed: the same result
    # different seeds start from different centres (k-means++ draws them from the seed)
    g = [C._kmeans_pp(x, 5, 1, torch.Generator().manual_seed(s))[0] for s in (7, 8)]
    assert not torch.equal(g[0], g[1])
    # well separated clouds are recovered exactly (up to the cluster numbering), whatever the seed
    clouds, truth = two_clouds(gap=12.0)
    for seed in (0, 1, 2):
        found = C.kmeans(clouds, 2, seed=seed).labels
        assert torch.equal(found, truth) or torch.equal(found, 1 - truth)
    with pytest.raises(ValueError, match="k must be in"):
        C.kmeans(x, 61)


def test_similarity_default_sigma_is_the_median_distance():
    x, _ = two_clouds()
    d = C.pairwise_distances(x)
    assert torch.allclose(d, d.T) and float(d.diagonal().abs().max()) == 0.0
    s, sigma = C.similarity(d)
    off = d[~torch.eye(len(d), dtype=torch.bool)]
    assert sigma == pytest.approx(float(off.median()))
    assert torch.allclose(s, torch.exp(-d / sigma))
    s1, one = C.similarity(d, 1.0)
    assert one == 1.0 and torch.allclose(s1, torch.exp(-d))


@pytest.mark.parametrize("kind", ["paper", "gaussian"])
def test_adjacency_formulas_and_threshold(kind):
    x, _ = two_clouds()
    d = C.pairwise_distances(x)
    s, _ = C.similarity(d)
    a = C.adjacency(s, d, kind, kappa=0.2, tau=0.7)
    expected = torch.exp(-(1 - s) / 0.7) if kind == "paper" else torch.exp(-(d**2) / 0.49)
    expected = torch.where(s > 0.2, expected, torch.zeros_like(s))
    expected.fill_diagonal_(0)
    assert torch.allclose(a, expected)
    assert torch.allclose(a, a.T)


@pytest.mark.parametrize("kind", ["unnormalized", "normalized"])
def test_laplacian_properties(kind, real_rows):
    d = C.pairwise_distances(real_rows)
    s, _ = C.similarity(d)
    a = C.adjacency(s, d)
    lap = C.laplacian(a.double(), kind)
    vals, vecs, emb = C.spectral_embedding(lap, 3)
    assert float(vals.min()) >= -1e-8  # positive semi-definite
    assert torch.all(vals[1:] >= vals[:-1])  # ascending
    if kind == "unnormalized":
        assert torch.allclose(lap.sum(1), torch.zeros(len(lap), dtype=lap.dtype), atol=1e-9)  # rows sum to 0
        u1 = vecs[:, 0]
        assert torch.allclose(u1, u1.mean().expand_as(u1), atol=1e-8)  # u_1 is constant
    else:
        deg = C.degree(a.double())
        assert torch.allclose(lap @ deg.sqrt(), torch.zeros(len(lap), dtype=lap.dtype), atol=1e-8)  # D^½·1 is its null vector
    assert emb.shape == (len(real_rows), 3) and torch.equal(emb, vecs[:, 1:4])


def test_normalized_laplacian_handles_isolated_vertices():
    a = torch.tensor([[0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]])
    lap = C.laplacian(a, "normalized")
    assert torch.isfinite(lap).all() and lap[2, 2] == 1.0


def test_the_fiedler_vector_splits_two_clouds():
    x, truth = two_clouds()
    for kind in ("unnormalized", "normalized"):
        d = C.pairwise_distances(x)
        s, _ = C.similarity(d)
        lap = C.laplacian(C.adjacency(s, d), kind)
        _, vecs, _ = C.spectral_embedding(lap, 1)
        side = (vecs[:, 1] > 0).long()
        agree = float((side == truth).float().mean())
        assert max(agree, 1 - agree) == 1.0
    res = C.spectral_clustering(x, 2, n_eigvecs=1)
    assert len(set(zip(res.labels.tolist(), truth.tolist()))) == 2  # the clusters are the clouds


def test_spectral_clustering_returns_every_intermediate(real_rows):
    res = C.spectral_clustering(real_rows, 6, n_eigvecs=3, seed=0)
    n = len(real_rows)
    assert res.similarity.shape == res.adjacency.shape == res.laplacian.shape == (n, n)
    assert res.eigenvalues.shape == (n,) and res.embedding.shape == (n, 3)
    assert torch.bincount(res.labels, minlength=6).min() >= 1
    assert torch.equal(res.labels, C.spectral_clustering(real_rows, 6, n_eigvecs=3, seed=0).labels)


def test_a_graph_without_edges_names_kappa(real_rows):
    with pytest.raises(ValueError, match="kappa=0.99"):
        C.spectral_clustering(real_rows, 6, kappa=0.99, sigma=1.0)


def test_a_disconnected_graph_still_gives_q_clusters():
    x, _ = two_clouds(gap=40.0)
    res = C.spectral_clustering(x, 4, n_eigvecs=2, sigma=1.0, kappa=1e-6)
    assert res.n_components >= 2
    assert torch.bincount(res.labels, minlength=4).min() >= 1


def test_paper_sigma_underflows_on_raw_activations(real_rows):
    """Why the default σ is the median distance: with σ = 1 almost every similarity is 0."""
    d = C.pairwise_distances(real_rows)
    s1, _ = C.similarity(d, 1.0)
    off = ~torch.eye(len(d), dtype=torch.bool)
    assert float((s1[off] < 1e-6).float().mean()) > 0.9
    s, _ = C.similarity(d)
    assert float((s[off] < 1e-6).float().mean()) < 0.1


def test_bad_parameters():
    x, _ = two_clouds()
    d = C.pairwise_distances(x)
    s, _ = C.similarity(d)
    with pytest.raises(ValueError, match="unknown adjacency"):
        C.adjacency(s, d, "knn")
    with pytest.raises(ValueError, match="unknown laplacian"):
        C.laplacian(s, "random-walk")
    with pytest.raises(ValueError, match="n_eigvecs=80"):
        C.spectral_embedding(C.laplacian(C.adjacency(s, d)), 80)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        C.similarity(d, -1.0)


@pytest.mark.parametrize("n, d, k", [(40, 3, 2), (320, 49, 6), (200, 16, 10)])
def test_ward_is_scikit_learns_partition(n, d, k):
    """SciPy's linkage cut into k clusters = scikit-learn's AgglomerativeClustering(linkage="ward")."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n))
    ours = C.ward(x, k).numpy()
    theirs = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x.double().numpy())
    assert adjusted_rand_score(ours, theirs) == 1.0 and len(set(ours.tolist())) == k


def test_ward_cuts_exactly_k_clusters_when_merge_heights_tie():
    """Duplicated rows merge at height 0: fcluster alone would stop short of k there."""
    x = torch.zeros(20, 3)
    x[10:] = 1.0  # two distinct rows, ten copies each
    labels = C.ward(x, 5)
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 4]
    assert not set(labels[:10].tolist()) & set(labels[10:].tolist())  # never a cluster across the two values
