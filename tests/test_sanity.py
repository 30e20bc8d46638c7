"""Sanity checks (Adebayo et al. 2018): the similarity measures against SciPy and scikit-image,
the randomisation test on the real network — Grad-CAM passes, the Sobel control fails — and the
caller's model left as it was."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from camlab import sanity as S


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=(20, 30)).astype(float)  # many ties
    b = a + rng.normal(size=a.shape)
    assert S.spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert S.spearman(a, -a) == pytest.approx(-1.0)


def test_a_constant_map_ranks_nothing():
    rng = np.random.default_rng(1)
    m = rng.random((16, 16))
    sim = S.similarity(np.zeros((16, 16)), m)
    assert sim["spearman"] == 0.0
    assert sim["spearman_abs"] == 0.0
    assert sim["hog"] == 0.0
    assert sim["constant"] is True
    assert S.similarity(m, m)["constant"] is False


def test_similarity_equals_scikit_image():
    rng = np.random.default_rng(2)
    a = rng.random((64, 64))
    b = np.clip(a + 0.3 * rng.random((64, 64)), 0, 1)
    sim = S.similarity(torch.as_tensor(a), b)
    assert sim["ssim"] == pytest.approx(structural_similarity(a, b, data_range=1.0))
    ha = hog(a, pixels_per_cell=(8, 8), cells_per_block=(3, 3))
    hb = hog(b, pixels_per_cell=(8, 8), cells_per_block=(3, 3))
    assert sim["hog"] == pytest.approx(np.corrcoef(ha, hb)[0, 1])
    same = S.similarity(a, a)
    assert all(same[k] == pytest.approx(1.0) for k in S.SIMILARITIES)


def test_blocks_are_top_first(lite0):
    blocks = S.randomization_blocks(lite0.module)
    assert blocks[0] == "classifier"
    assert blocks[-1] == "conv_stem"
    assert [b for b in blocks if b.startswith("blocks.")] == [f"blocks.{i}" for i in range(6, -1, -1)]


@pytest.fixture(scope="module")
def cascading(lite0, real_batch):
    model = lite0.module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    rows = {
        m: S.model_randomization(m, model, "bn2", real_batch, mode="cascading", seed=0) for m in ("gradcam", "sobel")
    }
    after = {k: v for k, v in model.state_dict().items()}
    hooks_after = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )
    return rows, before, after, hooks, hooks_after


def _mean_at(rows, step, key="spearman"):
    return float(np.mean([r[key] for r in rows if r["step"] == step]))


def test_gradcam_passes_and_the_sobel_control_fails(cascading, lite0, real_batch):
    rows, *_ = cascading
    last = len(S.randomization_blocks(lite0.module))
    assert len(rows["gradcam"]) == (last + 1) * len(real_batch)
    assert _mean_at(rows["gradcam"], 0) == pytest.approx(1.0)
    assert _mean_at(rows["gradcam"], last) < 0.5  # the map depends on the weights
    assert min(r["spearman"] for r in rows["sobel"]) >= 0.99  # the edge detector does not: it fails


def test_the_callers_model_is_left_unchanged(cascading):
    _, before, after, hooks, hooks_after = cascading
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hooks == hooks_after


def test_independent_randomisation_touches_one_block(lite0, real_batch):
    """EigenCAM at bn2 never looks at the classifier: re-initialising it alone leaves the map as
    it was, while re-initialising the last convolution changes it."""
    rows = S.model_randomization(
        "eigencam", lite0.module, "bn2", real_batch[:2], mode="independent", blocks=["classifier", "conv_head"]
    )
    by = {r["block"]: [] for r in rows}
    for r in rows:
        by[r["block"]].append(r["spearman"])
    assert min(by["classifier"]) == pytest.approx(1.0)
    assert max(by["conv_head"]) < 0.99


def test_random_logit(lite0, real_batch):
    grad = S.random_logit("gradcam", lite0.module, "bn2", real_batch, seed=0)
    eig = S.random_logit("eigencam", lite0.module, "bn2", real_batch, seed=0)
    assert all(r["other"] != r["target"] for r in grad)
    assert [r["other"] for r in grad] == [
        r["other"] for r in S.random_logit("gradcam", lite0.module, "bn2", real_batch, seed=0)
    ]
    assert np.mean([r["spearman"] for r in grad]) < 0.9  # Grad-CAM is class-specific
    assert min(r["spearman"] for r in eig) == pytest.approx(1.0)  # EigenCAM is not


def test_bad_arguments(lite0, real_batch):
    with pytest.raises(ValueError, match="unknown mode 'top'"):
        S.model_randomization("gradcam", lite0.module, "bn2", real_batch[:1], mode="top")
    with pytest.raises(ValueError, match="no block 'head'.*classifier, bn2"):
        S.model_randomization("gradcam", lite0.module, "bn2", real_batch[:1], blocks=["head"])
    with pytest.raises(ValueError, match="unknown method 'gradcan'"):
        S.model_randomization("gradcan", lite0.module, "bn2", real_batch[:1])
    with pytest.raises(ValueError, match="two H×W maps of one shape"):
        S.similarity(np.zeros((4, 4)), np.zeros((4, 5)))


def test_a_classifier_is_accepted_and_its_copies_run_unfolded(lite0, real_batch):
    """Given a Classifier, step 0 is its folded twin's map and the randomised networks are copies
    of the bare module: the same rows as on the module, to float rounding; neither is changed."""
    x = real_batch[:1]
    twin_state = {k: v.clone() for k, v in lite0.fast.network.state_dict().items()}
    blocks = ["classifier", "conv_head"]
    ours = S.model_randomization("eigencam", lite0, "bn2", x, mode="independent", blocks=blocks)
    theirs = S.model_randomization("eigencam", lite0.module, "bn2", x, mode="independent", blocks=blocks)
    assert [r["block"] for r in ours] == [r["block"] for r in theirs] == ["", "classifier", "conv_head"]
    assert all(a["spearman"] == pytest.approx(b["spearman"], abs=1e-3) for a, b in zip(ours, theirs, strict=True))
    assert all(torch.equal(v, twin_state[k]) for k, v in lite0.fast.network.state_dict().items())
    others = [r["other"] for r in S.random_logit("gradcam", lite0, "bn2", x)]
    assert others == [r["other"] for r in S.random_logit("gradcam", lite0.module, "bn2", x)]
    with pytest.raises(TypeError, match="model must be a torch nn.Module or a camlab Classifier"):
        S.model_randomization("gradcam", "efficientnet_lite0", "bn2", x)


def test_images_done_counts_a_partial_run():
    """A run committed in parts: images per method and check, and the run's size (the most any
    check has), counted by hand."""
    rows = [
        {"method": "a", "mode": m, "step": s, "image": i}
        for m, images in (("cascading", "pq"), ("independent", "p"))
        for i in images
        for s in (0, 1)
    ] + [{"method": "b", "mode": "cascading", "step": 0, "image": "p"}]
    logit = [{"method": "a", "image": i} for i in "pqr"]
    counts, n_run = S.images_done(rows, logit)
    assert counts == {
        "a": {"cascading": 2, "random logit": 3, "independent": 1},
        "b": {"cascading": 1, "random logit": 0, "independent": 0},
    }
    assert n_run == 3
    assert S.images_done([]) == ({}, 0)
