"""K-means and the spectral-clustering steps (Feng et al. 2023, eq 10–17)."""

import math

import numpy as np
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
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.centers, b.centers)
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
    assert torch.allclose(d, d.T)
    assert float(d.diagonal().abs().max()) == 0.0
    s, sigma = C.similarity(d)
    off = d[~torch.eye(len(d), dtype=torch.bool)]
    assert sigma == pytest.approx(float(off.median()))
    assert torch.allclose(s, torch.exp(-d / sigma))
    s1, one = C.similarity(d, 1.0)
    assert one == 1.0
    assert torch.allclose(s1, torch.exp(-d))


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
        assert torch.allclose(
            lap @ deg.sqrt(), torch.zeros(len(lap), dtype=lap.dtype), atol=1e-8
        )  # D^½·1 is its null vector
    assert emb.shape == (len(real_rows), 3)
    assert torch.equal(emb, vecs[:, 1:4])


def test_normalized_laplacian_handles_isolated_vertices():
    a = torch.tensor([[0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]])
    lap = C.laplacian(a, "normalized")
    assert torch.isfinite(lap).all()
    assert lap[2, 2] == 1.0


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
    assert len(set(zip(res.labels.tolist(), truth.tolist(), strict=True))) == 2  # the clusters are the clouds


def test_spectral_clustering_returns_every_intermediate(real_rows):
    res = C.spectral_clustering(real_rows, 6, n_eigvecs=3, seed=0)
    n = len(real_rows)
    assert res.similarity.shape == res.adjacency.shape == res.laplacian.shape == (n, n)
    assert res.eigenvalues.shape == (n,)
    assert res.embedding.shape == (n, 3)
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


@pytest.mark.parametrize(("n", "d", "k"), [(40, 3, 2), (320, 49, 6), (200, 16, 10)])
def test_ward_is_scikit_learns_partition(n, d, k):
    """SciPy's linkage cut into k clusters = scikit-learn's AgglomerativeClustering(linkage="ward")."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n))
    ours = C.ward(x, k).numpy()
    theirs = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x.double().numpy())
    assert adjusted_rand_score(ours, theirs) == 1.0
    assert len(set(ours.tolist())) == k


def test_ward_cuts_exactly_k_clusters_when_merge_heights_tie():
    """Duplicated rows merge at height 0: fcluster alone would stop short of k there."""
    x = torch.zeros(20, 3)
    x[10:] = 1.0  # two distinct rows, ten copies each
    labels = C.ward(x, 5)
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 4]
    assert not set(labels[:10].tolist()) & set(labels[10:].tolist())  # never a cluster across the two values


# --- the relaxation's objective and the comparison of partitions (notebook 04) ----------------


def random_graph(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=g, dtype=torch.float64)
    a = (a + a.T) / 2
    a.fill_diagonal_(0)
    return a


def test_the_trace_of_the_indicators_is_the_cut():
    """tr(HᵀLH) = RatioCut with 1_A/√|A|; tr(HᵀL_N H) = NCut with D^½·1_A/√vol(A); HᵀH = I."""
    a = random_graph()
    labels = torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(1))
    deg = C.degree(a)
    for kind, lap_kind, h in (
        ("ratio", "unnormalized", C.indicator_matrix(labels)),
        ("normalized", "normalized", C.indicator_matrix(labels, deg)),
    ):
        assert torch.allclose(h.T @ h, torch.eye(h.shape[1], dtype=h.dtype), atol=1e-12)
        lap = C.laplacian(a, lap_kind)
        assert float(torch.trace(h.T @ lap @ h)) == pytest.approx(C.cut_value(a, labels, kind), rel=1e-10)
    # by hand, for one cluster of a 3-vertex path 0–1–2 with weights 2 and 3: cut({0}) = 2
    path = torch.tensor([[0, 2.0, 0], [2.0, 0, 3.0], [0, 3.0, 0]], dtype=torch.float64)
    two = torch.tensor([0, 1, 1])
    assert C.cut_value(path, two, "ratio") == pytest.approx(2 / 1 + 2 / 2)
    assert C.cut_value(path, two, "normalized") == pytest.approx(2 / 2 + 2 / 8)


def test_ky_fan_the_first_q_eigenvectors_including_u1_attain_the_bound():
    a = random_graph(seed=2)
    q = 3
    for lap_kind, degrees in (("unnormalized", None), ("normalized", C.degree(a))):
        lap = C.laplacian(a, lap_kind)
        vals, vecs, _ = C.spectral_embedding(lap, q)
        bound = float(vals[:q].sum())
        assert float(torch.trace(vecs[:, :q].T @ lap @ vecs[:, :q])) == pytest.approx(bound, abs=1e-9)
        # dropping u_1 for the next eigenvector costs λ_{q+1} − λ_1 > 0: the optimum includes u_1
        assert float(torch.trace(vecs[:, 1 : q + 1].T @ lap @ vecs[:, 1 : q + 1])) > bound + 1e-6
        for s in range(5):  # every partition's indicators lie above the relaxed minimum
            labels = torch.randint(0, q, (24,), generator=torch.Generator().manual_seed(s))
            h = C.indicator_matrix(labels, degrees)
            assert float(torch.trace(h.T @ lap @ h)) >= bound - 1e-9


def test_ncut_gain_is_zero_on_equal_weights_and_one_along_components():
    n = 30
    complete = torch.ones(n, n, dtype=torch.float64) - torch.eye(n, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for q in (2, 3, 7):
        labels = torch.randint(0, q, (n,), generator=g)
        labels[:q] = torch.arange(q)  # every cluster non-empty, sizes uneven
        assert C.ncut_gain(complete, labels) == pytest.approx(0.0, abs=1e-12)
    blocks = torch.block_diag(complete[:10, :10], complete[:20, :20])
    truth = torch.tensor([0] * 10 + [1] * 20)
    assert C.ncut_gain(blocks, truth) == pytest.approx(1.0)
    assert C.ncut_gain(blocks, truth[torch.randperm(n, generator=g)]) < 0.5
    with pytest.raises(ValueError, match="at least 2"):
        C.ncut_gain(complete, torch.zeros(n, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown cut"):
        C.cut_value(complete, truth, "min")
    with pytest.raises(ValueError, match="does not match"):
        C.cut_value(complete, truth[:5])


def test_largest_eigengap_counts_the_pieces_of_a_graph():
    g = torch.Generator().manual_seed(0)
    pieces = [torch.rand(8, 8, generator=g, dtype=torch.float64) + 0.5 for _ in range(3)]
    a = torch.block_diag(*[(p + p.T) / 2 for p in pieces])
    a.fill_diagonal_(0)
    vals, _, _ = C.spectral_embedding(C.laplacian(a, "normalized"), 1)
    assert C.largest_eigengap(vals) == 3
    # a near-uniform complete graph: the only gap is after λ_1
    n = 24
    flat = 1.0 + 0.05 * random_graph(n, seed=3)
    flat.fill_diagonal_(0)
    vals, _, _ = C.spectral_embedding(C.laplacian(flat, "normalized"), 1)
    assert C.largest_eigengap(vals) == 1
    assert C.largest_eigengap(torch.tensor([0.0, 0.1, 0.2, 5.0]), max_k=2) == 1  # the gap after λ_3 lies beyond max_k
    with pytest.raises(ValueError, match="at least 2"):
        C.largest_eigengap(torch.tensor([0.0]))


def test_agreement_matrix_is_ari_between_runs_with_seed_agreement_on_the_diagonal():
    from sklearn.metrics import adjusted_rand_score

    g = torch.Generator().manual_seed(0)
    a = [torch.randint(0, 3, (40,), generator=g) for _ in range(3)]
    b = [(a[0] + 1) % 3]  # a relabelling of a's first run
    names, m = C.agreement_matrix({"a": a, "b": b})
    assert names == ["a", "b"]
    assert np.allclose(m, m.T, equal_nan=True)
    pairs = [adjusted_rand_score(a[i].numpy(), a[j].numpy()) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert m[0, 0] == pytest.approx(np.mean(pairs))
    assert np.isnan(m[1, 1])  # one run: no seed to compare
    expected = np.mean([adjusted_rand_score(x.numpy(), b[0].numpy()) for x in a])
    assert m[0, 1] == pytest.approx(expected)
    assert expected < 1.0
    assert C.mean_pairwise_ari([a[0], b[0]]) == pytest.approx(1.0)


def test_clustering_runs_gives_every_method_per_seed():
    x, truth = two_clouds(gap=12.0)
    runs = C.clustering_runs(x, 2, 1, seeds=(0, 1))
    assert list(runs.labels) == list(C.CLUSTERING_NAMES)
    assert [len(v) for v in runs.labels.values()] == [2, 2, 2, 1]
    names, m = C.agreement_matrix(runs.labels)
    assert np.allclose(m[~np.isnan(m)], 1.0)  # two far clouds: every method, every seed finds them
    for labels in runs.labels[C.CLUSTERING_NAMES[0]]:
        assert len(set(zip(labels.tolist(), truth.tolist(), strict=True))) == 2
    # the decompositions are those of spectral_clustering, reusable for another Q and K
    again = C.spectral_clustering(x, 3, n_eigvecs=2, seed=1)
    assert torch.equal(C.spectral_labels(runs.decompositions["normalized"], 3, 2, seed=1).labels, again.labels)
    assert torch.equal(runs.adjacency, again.adjacency)
    # eq 11 with τ = 1 and κ = 0 keeps every edge at ≥ e^-1 of the strongest: even two far clouds
    # give a dense graph, whose best cut is far from a clean split
    off = ~torch.eye(len(x), dtype=torch.bool)
    assert float(runs.adjacency[off].min()) >= math.exp(-1) - 1e-6
    shuffled = truth[torch.randperm(len(truth), generator=torch.Generator().manual_seed(0))]
    assert 0.1 < C.ncut_gain(runs.adjacency, truth) < 0.5
    assert C.ncut_gain(runs.adjacency, shuffled) < 0.05
    with pytest.raises(ValueError, match="at least one seed"):
        C.clustering_runs(x, 2, 1, seeds=())


def test_kernel_pca_cosine_is_one_on_a_regular_graph_and_low_with_uneven_degrees():
    n = 40
    # a circulant graph: every vertex has the same degree; weights fall with the distance on a ring
    ring = torch.tensor(
        [[math.exp(-min(abs(i - j), n - abs(i - j)) / 3.0) if i != j else 0.0 for j in range(n)] for i in range(n)],
        dtype=torch.float64,
    )
    x = torch.zeros(n, 2)  # rows are not used: the decomposition is built from the adjacency
    dec = C.SpectralResult(
        x,
        1.0,
        ring,
        ring,
        C.laplacian(ring),
        *C.spectral_embedding(C.laplacian(ring), 2)[:2],
        torch.empty(0),
        torch.empty(0),
        1,
    )
    assert C.kernel_pca_cosine(dec, 2) == pytest.approx(1.0, abs=1e-6)  # k = 2 takes the whole first frequency pair
    g = torch.Generator().manual_seed(0)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 10 + 0.1
    noise = torch.rand(n, n, generator=g, dtype=torch.float64)
    uneven = s[:, None] * s[None, :] * (1 + 0.5 * (noise + noise.T) / 2)
    uneven.fill_diagonal_(0)
    dec = C.SpectralResult(
        x,
        1.0,
        uneven,
        uneven,
        C.laplacian(uneven),
        *C.spectral_embedding(C.laplacian(uneven), 2)[:2],
        torch.empty(0),
        torch.empty(0),
        1,
    )
    assert C.kernel_pca_cosine(dec, 3) < 0.5
    with pytest.raises(ValueError, match="k=39"):
        C.kernel_pca_cosine(dec, 39)


def test_adjusted_rand_index_is_scikit_learns():
    from sklearn.metrics import adjusted_rand_score

    g = torch.Generator().manual_seed(0)
    for n, ka, kb in ((50, 3, 4), (1280, 8, 8), (7, 7, 1), (200, 2, 50)):
        a, b = torch.randint(0, ka, (n,), generator=g), torch.randint(0, kb, (n,), generator=g)
        b[: n // 2] = a[: n // 2]  # partly agreeing, so the index is neither 0 nor 1
        assert C.adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a.numpy(), b.numpy()), abs=1e-12)
    same = torch.randint(0, 5, (40,), generator=g)
    assert C.adjusted_rand_index(same, (same + 2) % 5) == 1.0  # the numbering does not matter
    for a, b in (
        (torch.zeros(6), torch.zeros(6)),
        (torch.arange(6), torch.arange(6)),
        (torch.zeros(6), torch.arange(6)),
    ):
        assert C.adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a.numpy(), b.numpy()))
    with pytest.raises(ValueError, match="different lengths"):
        C.adjusted_rand_index(torch.zeros(3), torch.zeros(4))
