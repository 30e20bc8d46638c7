"""Cluster-CAM (spec §4) against a direct computation from its own returned labels."""

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


@pytest.mark.parametrize("clustering", ["kmeans", "spectral"])
@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_heatmap_equals_a_direct_computation_from_the_labels(lite0, real_batch, clustering, alpha):
    x = real_batch[:2]
    Q = 6
    exp = ClusterCAM(lite0.module, "blocks.6", n_clusters=Q, clustering=clustering, alpha=alpha)(x)
    assert exp.labels.shape == (2, 320) and exp.cluster_maps.shape == (2, Q, 7, 7) and exp.cluster_scores.shape == (2, Q)
    assert exp.n_forward == 2 * (1 + Q)
    feats = {}
    h = lite0.module.blocks[6].register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    with torch.no_grad():
        probs = lite0.module(x).softmax(1)
    h.remove()
    for b in range(2):
        a, labels, c = feats["a"][b], exp.labels[b], int(probs[b].argmax())
        means = torch.stack([a[labels == q].mean(0) for q in range(Q)])  # eq 18
        masks = s(up(means, (224, 224)))
        with torch.no_grad():
            y = lite0.module(x[b : b + 1] * masks[:, None]).softmax(1)[:, c]  # eq 19
        assert torch.allclose(y, exp.cluster_scores[b], atol=1e-5)
        base, scissors = int(y.argmax()), int(y.argmin())  # eq 20–21
        assert (base, scissors) == (int(exp.base[b]), int(exp.scissors[b]))
        H = alpha * masks[base] - (1 - alpha) * masks[scissors]  # eq 22
        ref = s(H.clamp_min(0))
        assert torch.allclose(exp.heatmaps[b], ref, atol=1e-5)


def test_no_gradient_is_computed(lite0, real_batch):
    calls = []
    handles = [m.register_full_backward_hook(lambda *a: calls.append(1)) for m in lite0.module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():  # any autograd use would fail in here
            exp = ClusterCAM(lite0.module, "bn2")(real_batch[:1].clone())
    finally:
        for h in handles:
            h.remove()
    assert not calls and torch.isfinite(exp.heatmaps).all()


def test_same_seed_same_map_and_q_sets_the_cost(lite0, real_batch):
    x = real_batch[:1]
    a = ClusterCAM(lite0.module, "blocks.6", seed=3)(x)
    b = ClusterCAM(lite0.module, "blocks.6", seed=3)(x)
    assert torch.equal(a.heatmaps, b.heatmaps) and torch.equal(a.labels, b.labels)
    assert ClusterCAM(lite0.module, "blocks.6", n_clusters=3)(x).n_forward == 1 + 3
    assert ClusterCAM(lite0.module, "blocks.6", n_clusters=9)(x).n_forward == 1 + 9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_clusters": 1}, r"n_clusters \(Q\) must be an integer ≥ 2, got 1"),
        ({"n_eigvecs": 0}, r"n_eigvecs \(K\) must be an integer ≥ 1, got 0"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\], got 1.5"),
        ({"alpha": -0.1}, r"alpha must be in \[0, 1\]"),
        ({"clustering": "dbscan"}, "unknown clustering 'dbscan'"),
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


def test_registered_and_in_the_shared_checks():
    assert camlab.METHODS["clustercam"] is ClusterCAM
