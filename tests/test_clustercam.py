"""Cluster-CAM (Feng et al. 2023, eq 18–22) against a direct computation from its own returned labels, for every
clustering and coupling; fit and couple against the one-call pipeline."""

import pytest
import torch
import torch.nn.functional as F

import camlab
from camlab import ClusterCAM


def s(m):
    lo, hi = m.amin((-2, -1), keepdim=True), m.amax((-2, -1), keepdim=True)
    return torch.where(hi > lo, (m - lo) / (hi - lo).clamp_min(1e-30), torch.zeros_like(m))


def up(m, size):
    return F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def blocks6(model, x):
    """The output of blocks.6 and the softmax of the model for ``x``, through a plain forward hook."""
    feats = {}
    h = model.blocks[6].register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    try:
        with torch.no_grad():
            probs = model(x).softmax(1)
    finally:
        h.remove()
    return feats["a"], probs


def direct_heatmap(maps, labels, scores, alpha, coupling, size=(224, 224)):
    """Eq 20–22 and the two other couplings, written out from an explanation's own labels."""
    Q = int(labels.max()) + 1
    means = torch.stack([maps[labels == q].mean(0) for q in range(Q)])  # eq 18
    base, scissors = int(scores.argmax()), int(scores.argmin())
    if coupling == "weighted":  # Σ_q (y_q − min y) s(Up(F̃_q)); no α
        H = sum((scores[q] - scores.min()) * s(up(means[q : q + 1], size))[0] for q in range(Q))
    elif coupling == "paper":  # eq 22 as printed: the raw upsampled means
        H = alpha * up(means[base : base + 1], size)[0] - (1 - alpha) * up(means[scissors : scissors + 1], size)[0]
    else:  # camlab's: each map scaled to [0, 1] first
        H = (
            alpha * s(up(means[base : base + 1], size))[0]
            - (1 - alpha) * s(up(means[scissors : scissors + 1], size))[0]
        )
    return s(H.clamp_min(0)[None])[0], base, scissors


@pytest.mark.parametrize("coupling", ["normalized", "paper", "weighted"])
@pytest.mark.parametrize(("clustering", "alpha"), [("kmeans", 0.5), ("spectral", 0.8), ("ward", 0.7)])
def test_heatmap_equals_a_direct_computation_from_the_labels(lite0, real_batch, clustering, alpha, coupling):
    x = real_batch[:2]
    Q = 6
    exp = ClusterCAM(lite0.module, "blocks.6", n_clusters=Q, clustering=clustering, alpha=alpha, coupling=coupling)(x)
    assert exp.labels.shape == (2, 320)
    assert exp.cluster_maps.shape == (2, Q, 7, 7)
    assert exp.cluster_scores.shape == (2, Q)
    assert exp.n_forward == 2 * (1 + Q)
    assert exp.params["coupling"] == coupling
    assert exp.params["alpha"] == (None if coupling == "weighted" else alpha)
    acts, probs = blocks6(lite0.module, x)
    for b in range(2):
        a, labels, c = acts[b], exp.labels[b], int(probs[b].argmax())
        means = torch.stack([a[labels == q].mean(0) for q in range(Q)])  # eq 18
        masks = s(up(means, (224, 224)))
        with torch.no_grad():
            y = lite0.module(x[b : b + 1] * masks[:, None]).softmax(1)[:, c]  # eq 19
        assert torch.allclose(y, exp.cluster_scores[b], atol=1e-5)
        ref, base, scissors = direct_heatmap(a, labels, y, alpha, coupling)  # eq 20–22
        assert (base, scissors) == (int(exp.base[b]), int(exp.scissors[b]))
        assert torch.allclose(exp.heatmaps[b], ref, atol=1e-5)


def test_ward_is_scikit_learns_and_has_no_seed(lite0, real_batch):
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    x = real_batch[:1]
    a = ClusterCAM(lite0.module, "blocks.6", clustering="ward", n_clusters=6, seed=0)(x)
    b = ClusterCAM(lite0.module, "blocks.6", clustering="ward", n_clusters=6, seed=12345)(x)
    assert torch.equal(a.heatmaps, b.heatmaps)
    assert torch.equal(a.labels, b.labels)
    assert "seed" not in a.params
    rows = blocks6(lite0.module, x)[0][0].flatten(1).double().numpy()
    theirs = AgglomerativeClustering(n_clusters=6, linkage="ward").fit_predict(rows)
    assert adjusted_rand_score(theirs, a.labels[0].numpy()) == 1.0  # the same partition, up to relabelling
    assert len(set(zip(theirs.tolist(), a.labels[0].tolist(), strict=True))) == 6  # a one-to-one relabelling


def test_fit_then_couple_equals_the_call_and_costs_no_pass(lite0, real_batch):
    x = real_batch[:2]
    # K-means: its Q = 3 clusters share no membership with its Q = 5 ones here, so each costs a
    # pass (Ward's Q = 3 merges its Q = 5 clusters, and the unmerged ones would be free)
    cam = ClusterCAM(lite0.module, "blocks.6", n_clusters=5, clustering="kmeans")
    state = cam.fit(x)
    assert state.n_forward == 2 * (1 + 5)
    assert state.masked_forwards == 10
    calls = []
    handle = lite0.module.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        by_coupling = {c: cam.couple(state, alpha=0.3, coupling=c) for c in ("normalized", "paper", "weighted")}
        again = cam.fit(state)  # the same clustering on the same forward pass: every score cached
        other_q = cam.replace(n_clusters=3).fit(state)  # new clusters: only their masked passes
    finally:
        handle.remove()
    assert sum(calls) == other_q.n_forward == 2 * 3
    assert again.n_forward == 0
    assert torch.equal(again.cluster_scores, state.cluster_scores)
    for coupling, exp in by_coupling.items():
        fresh = ClusterCAM(lite0.module, "blocks.6", n_clusters=5, clustering="kmeans", alpha=0.3, coupling=coupling)(x)
        assert torch.allclose(exp.heatmaps, fresh.heatmaps, atol=1e-6)
        assert exp.params == fresh.params
        assert exp.n_forward == fresh.n_forward == 12
    with pytest.raises(ValueError, match="fitted at layer 'blocks.6'"):
        ClusterCAM(lite0.module, "bn2").fit(state)
    with pytest.raises(ValueError, match="keeps its own targets"):
        cam.fit(state, targets=[1, 2])
    with pytest.raises(ValueError, match="unknown coupling 'sum'"):
        cam.couple(state, coupling="sum")
    with pytest.raises(ValueError, match="has no setting 'q'"):
        cam.replace(q=3)


def test_n_init_reaches_kmeans(lite0, real_batch):
    from camlab.clustering import kmeans

    x = real_batch[:1]
    exp = ClusterCAM(lite0.module, "blocks.6", n_clusters=6, clustering="kmeans", n_init=7, seed=2)(x)
    assert exp.params["n_init"] == 7
    assert torch.equal(exp.labels[0], kmeans(blocks6(lite0.module, x)[0][0].flatten(1), 6, seed=2, n_init=7).labels)


def test_no_gradient_is_computed(lite0, real_batch):
    calls = []
    handles = [
        m.register_full_backward_hook(lambda *a: calls.append(1))
        for m in lite0.module.modules()
        if not list(m.children())
    ]
    try:
        with torch.inference_mode():  # any autograd use would fail in here
            exp = ClusterCAM(lite0.module, "bn2")(real_batch[:1].clone())
    finally:
        for h in handles:
            h.remove()
    assert not calls
    assert torch.isfinite(exp.heatmaps).all()


def test_same_seed_same_map_and_q_sets_the_cost(lite0, real_batch):
    x = real_batch[:1]
    a = ClusterCAM(lite0.module, "blocks.6", clustering="kmeans", seed=3)(x)
    b = ClusterCAM(lite0.module, "blocks.6", clustering="kmeans", seed=3)(x)
    assert torch.equal(a.heatmaps, b.heatmaps)
    assert torch.equal(a.labels, b.labels)
    assert ClusterCAM(lite0.module, "blocks.6", n_clusters=3)(x).n_forward == 1 + 3
    assert ClusterCAM(lite0.module, "blocks.6", n_clusters=9)(x).n_forward == 1 + 9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_clusters": 1}, r"n_clusters \(Q\) must be an integer ≥ 2, got 1"),
        ({"n_eigvecs": 0}, r"n_eigvecs \(K\) must be an integer ≥ 1, got 0"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\], got 1.5"),
        ({"alpha": -0.1}, r"alpha must be in \[0, 1\]"),
        ({"clustering": "dbscan"}, "unknown clustering 'dbscan'"),
        ({"coupling": "sum"}, "unknown coupling 'sum'; use one of"),
        ({"n_init": 0}, r"n_init must be an integer ≥ 1, got 0"),
    ],
)
def test_bad_parameters_at_construction(lite0, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterCAM(lite0.module, "blocks.6", **kwargs)


def test_q_and_k_against_the_channel_count(lite0, real_batch):
    with pytest.raises(ValueError, match=r"n_clusters \(Q\) = 400 is larger than the 320 channels"):
        ClusterCAM(lite0.module, "blocks.6", n_clusters=400)(real_batch[:1])
    with pytest.raises(ValueError, match=r"n_eigvecs \(K\) = 320 must be smaller than the 320 channels"):
        ClusterCAM(lite0.module, "blocks.6", clustering="spectral", n_eigvecs=320)(real_batch[:1])


def test_alpha_one_is_the_base_map_alone(lite0, real_batch):
    exp = ClusterCAM(lite0.module, "blocks.6", alpha=1.0)(real_batch[:1])
    base = exp.cluster_maps[0, int(exp.base[0])]
    assert torch.allclose(exp.heatmaps[0], s(up(base[None], (224, 224)))[0], atol=1e-5)


def test_registered_and_runs_the_shared_pipeline(lite0, real_batch, monkeypatch):
    """The registry builds Cluster-CAM, which goes through BaseCAM's checks and post-processing
    like every other method: the shared post-processing runs once per call."""
    from camlab.methods.base import BaseCAM

    assert camlab.METHODS["clustercam"] is ClusterCAM
    assert issubclass(ClusterCAM, BaseCAM)
    calls = []
    shared = BaseCAM.postprocess
    monkeypatch.setattr(
        BaseCAM, "postprocess", lambda self, cam, size: calls.append(type(self).__name__) or shared(self, cam, size)
    )
    exp = camlab.METHODS["clustercam"](lite0.module, "blocks.6", n_clusters=4)(real_batch[:1])
    assert calls == ["ClusterCAM"]
    assert exp.method == "clustercam"
    assert exp.layer == "blocks.6"
    assert exp.params["n_clusters"] == 4
    assert float(exp.heatmaps.min()) == 0.0
    assert float(exp.heatmaps.max()) == pytest.approx(1.0)
    lite0.module.train()
    try:
        with pytest.raises(RuntimeError, match="training mode"):  # BaseCAM's guard
            ClusterCAM(lite0.module, "blocks.6")(real_batch[:1])
    finally:
        lite0.module.eval()


def test_logit_scores_are_the_logits_of_the_masked_images(lite0, real_batch):
    x = real_batch[:1]
    exp = ClusterCAM(lite0.module, "blocks.6", n_clusters=4, score="logit")(x)
    t = int(exp.targets[0])
    masks = s(up(exp.cluster_maps[0], (224, 224)))  # Q×H×W, eq 19's s(Up(F̃_q))
    with torch.no_grad():
        logits = lite0.module(x * masks[:, None])[:, t]
    assert torch.allclose(exp.cluster_scores[0], logits, atol=1e-4)
    assert not torch.allclose(exp.cluster_scores[0], logits.softmax(0))  # logits, not probabilities
