"""Every metric against a direct computation written here, on real images (to 1e-5)."""

import pytest
import torch

import camlab
from camlab import metrics as M


@pytest.fixture(scope="module")
def case(lite0, real_batch):
    x = real_batch[:2]
    exp = camlab.GradCAM(lite0.module, "bn2")(x)
    return x, exp.heatmaps, exp.targets


def probs(model, x, t):
    with torch.no_grad():
        return model(x).softmax(1).gather(1, t[:, None])[:, 0]


@pytest.mark.parametrize("clip", [True, False])
def test_confidence_drop(lite0, case, clip):
    x, h, t = case
    y = probs(lite0.module, x, t)
    o = probs(lite0.module, x * h[:, None], t)  # E = X ⊙ H on the normalised input
    ref = (y - o) / y
    ref = ref.clamp_min(0) if clip else ref
    assert torch.allclose(M.confidence_drop(lite0.module, x, h, t, clip=clip), ref, atol=1e-5)


def test_increase_and_summary(lite0, case):
    x, h, t = case
    y = probs(lite0.module, x, t)
    o = probs(lite0.module, x * h[:, None], t)
    inc = M.increase(lite0.module, x, h, t)
    assert torch.equal(inc, o > y)
    s = M.confidence_summary([0.1, 0.3], [True, False])
    assert s == {"confidence_drop": pytest.approx(20.0), "increase": 50.0, "n_images": 2}


def test_measure_equals_each_metric_alone(lite0, case):
    x, h, t = case
    res = M.measure(lite0.module, x, h, t, n_steps=4)
    assert list(res) == list(M.METRICS)
    assert torch.allclose(res["drop"], M.confidence_drop(lite0.module, x, h, t).cpu(), atol=1e-6)
    assert torch.allclose(res["drop_unclipped"], M.confidence_drop(lite0.module, x, h, t, clip=False).cpu(), atol=1e-6)
    assert torch.equal(res["drop"], res["drop_unclipped"].clamp_min(0))
    assert torch.equal(res["increase"], M.increase(lite0.module, x, h, t).cpu())
    assert torch.allclose(res["insertion"], M.insertion(lite0.module, x, h, t, n_steps=4).auc, atol=1e-6)
    assert torch.allclose(res["deletion"], M.deletion(lite0.module, x, h, t, n_steps=4).auc, atol=1e-6)
    assert torch.equal(res["coverage"], M.coverage(h))
    assert list(M.measure(lite0.module, x, h, t, ["coverage", "drop"])) == ["drop", "coverage"]
    with pytest.raises(ValueError, match="unknown metric 'auc'; available: drop, drop_unclipped, increase"):
        M.measure(lite0.module, x, h, t, ["auc"])


def test_a_constant_heatmap_gives_no_nan(lite0, case):
    x, _, t = case
    zero = torch.zeros(2, 224, 224)
    one = torch.ones(2, 224, 224)
    assert torch.isfinite(M.confidence_drop(lite0.module, x, zero, t)).all()
    assert torch.allclose(M.confidence_drop(lite0.module, x, one, t, clip=False), torch.zeros(2), atol=1e-5)  # E = X
    y0 = probs(lite0.module, torch.zeros_like(x), t)
    y = probs(lite0.module, x, t)
    assert torch.allclose(M.confidence_drop(lite0.module, x, zero, t, clip=False), (y - y0) / y, atol=1e-5)
    for curves in (M.deletion(lite0.module, x, zero, t, n_steps=4), M.insertion(lite0.module, x, zero, t, n_steps=4)):
        assert torch.isfinite(curves.scores).all()
        assert torch.isfinite(curves.auc).all()


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_deletion_and_insertion(lite0, case, mode):
    x, h, t = case
    n_steps = 8
    # distinct heatmap values, so the order of the pixels does not depend on how ties are broken
    # (the method's map, ties broken at random, turned into evenly spaced ranks in [0, 1])
    key = (
        h.double().flatten(1)
        + torch.rand(h.flatten(1).shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e-9
    )
    h = (key.argsort(1).argsort(1).float() / (key.shape[1] - 1)).view_as(h)
    assert all(v.unique().numel() == v.numel() for v in h.flatten(1))
    curves = getattr(M, mode)(lite0.module, x, h, t, n_steps=n_steps)
    blurred = camlab.masking.blur(x)
    n = 224 * 224
    ref = torch.zeros(2, n_steps + 1)
    for b in range(2):
        order = torch.argsort(h[b].flatten(), descending=True)  # no ties: any sort gives this order
        for k in range(n_steps + 1):
            top = torch.zeros(n)
            top[order[: round(k * n / n_steps)]] = 1
            top = top.view(224, 224)
            if mode == "deletion":
                img = x[b] * (1 - top)  # removed pixels become 0 in normalised space
            else:
                img = blurred[b] * (1 - top) + x[b] * top
            ref[b, k] = probs(lite0.module, img[None], t[b : b + 1])[0]
    assert torch.allclose(curves.scores, ref, atol=1e-5)
    frac = torch.linspace(0, 1, n_steps + 1)
    auc = ((ref[:, 1:] + ref[:, :-1]) / 2 * (frac[1:] - frac[:-1])).sum(1)
    assert torch.allclose(curves.auc, auc, atol=1e-5)
    if mode == "deletion":
        assert torch.all(curves.scores[:, 0] >= curves.scores[:, -1])


def test_coverage_and_pointing():
    h = torch.zeros(4, 6)
    h[1, 4] = 1.0
    h[0, 0] = 0.5
    assert M.coverage(h[None]).item() == pytest.approx(1.5 / 24)
    right = M.grid_pointing(h, (0, 3, 4, 3))  # the right half
    assert right.mass_inside == pytest.approx(1 / 1.5)
    assert right.max_inside
    left = M.grid_pointing(h, (0, 0, 4, 3))
    assert left.mass_inside == pytest.approx(0.5 / 1.5)
    assert not left.max_inside
    assert M.grid_pointing(torch.zeros(4, 6), (0, 0, 4, 3)) == M.PointingResult(0.0, False)


def test_bad_inputs(lite0, case):
    x, h, t = case
    with pytest.raises(ValueError, match="do not match"):
        M.confidence_drop(lite0.module, x, h[:1], t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.confidence_drop(lite0.module, x, h * 2, t)
    with pytest.raises(ValueError, match="n_steps"):
        M.deletion(lite0.module, x, h, t, n_steps=0)


def test_grid_composites_and_the_pointing_game(lite0, dev_records):
    from camlab.evaluation.harness import parse_methods, pointing_game

    comps = camlab.data.grid_composites(dev_records, k=2, n=3, seed=1)
    again = camlab.data.grid_composites(dev_records, k=2, n=3, seed=1)
    assert [c.labels for c in comps] == [c.labels for c in again]  # seeded
    assert all(len(set(c.class_indices)) == 2 and c.image.size == (448, 224) for c in comps)
    assert comps[0].boxes == ((0, 0, 224, 224), (0, 224, 224, 224))
    four = camlab.data.grid_composites(dev_records, k=4, n=1)
    assert four[0].image.size == (448, 448)
    assert four[0].boxes[3] == (224, 224, 224, 224)
    rows, skipped = pointing_game(lite0, comps, parse_methods("gradcam"), progress=False)
    assert len(rows) + skipped == 3 * 2
    for r in rows:
        assert 0 <= r["mass_inside"] <= 1
    with pytest.raises(ValueError, match="k is 2"):
        camlab.data.grid_composites(dev_records, k=3)


def _separable_blur(x, kernel_size=51, sigma=50.0, mode="reflect"):
    """An independent reference: the Gaussian blur as two 1-D convolutions."""
    import torch.nn.functional as F

    half = kernel_size // 2
    t = torch.arange(kernel_size, dtype=x.dtype) - half
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    out = F.pad(x, (half, half, half, half), mode=mode)
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@pytest.mark.parametrize(("size", "mode"), [((64, 48), "reflect"), ((20, 30), "replicate"), ((8, 8), "replicate")])
def test_blur_is_torchvisions_gaussian_blur(size, mode):
    from torchvision.transforms.functional import gaussian_blur

    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    ours = camlab.masking.blur(x)
    assert torch.allclose(ours, _separable_blur(x, mode=mode), atol=1e-5)
    assert torch.allclose(camlab.masking.blur(x[0]), ours[0])  # one image without the batch axis
    if mode == "reflect":
        assert torch.equal(ours, gaussian_blur(x, [51, 51], [50.0, 50.0]))
