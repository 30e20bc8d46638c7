"""ROAD (noisy linear imputation and the MoRF/LeRF curves), Average Gain, the equal-area metrics
and random tie-breaking, against the ROAD authors' imputation (as pytorch-grad-cam ships it),
pytorch-grad-cam's ROAD metric and direct computations."""

import pytest
import torch

import camlab
from camlab import metrics as M

road_ref = pytest.importorskip("pytorch_grad_cam.metrics.road")
# pytorch-grad-cam calls np.percentile on a torch tensor (its ROAD threshold), which numpy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


def probs(model, x, t):
    with torch.no_grad():
        return model(x).softmax(1).gather(1, t[:, None])[:, 0]


@pytest.fixture(scope="module")
def case(lite0, real_batch):
    x = real_batch[:2]
    exp = camlab.GradCAM(lite0.module, "bn2")(x)
    return x, exp.heatmaps, exp.targets


def test_imputation_equals_the_road_authors_with_kept_pixels_untouched(case):
    x, h, _ = case
    ranks = M.pixel_ranks(h)
    n = h[0].numel()
    removed = torch.stack([(ranks[b] < round(p * n)).view(h.shape[1:]) for b in range(2) for p in (0.1, 0.5, 0.9)])
    owner = torch.arange(2).repeat_interleave(3)
    ours = M.noisy_linear_impute(x[owner], removed, noise=0.0)
    ref = torch.stack(
        [road_ref.NoisyLinearImputer(noise=0.0)(x[o].contiguous(), (~removed[k]).float()) for k, o in enumerate(owner)]
    )
    assert (ours - ref).abs().max() <= 1e-3
    kept = ~removed[:, None].expand_as(ours)
    assert torch.equal(ours[kept], x[owner][kept])


def test_imputed_pixels_are_the_weighted_mean_of_their_neighbours():
    """The defining equation, checked directly: every removed pixel equals the 1/6–1/12 weighted
    mean of its in-image neighbours (borders and corners included)."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 9, 11, dtype=torch.float64)
    removed = torch.rand(1, 9, 11) < 0.6
    removed[0, 0, 0] = removed[0, -1, 5] = True
    v = M.noisy_linear_impute(x, removed, noise=0.0)[0]
    for i, j in removed[0].nonzero().tolist():
        num, den = torch.zeros(2, dtype=torch.float64), 0.0
        for (di, dj), w in camlab.evaluation.imputation.NEIGHBOURS:
            if 0 <= i + di < 9 and 0 <= j + dj < 11:
                num += w * v[:, i + di, j + dj]
                den += w
        assert torch.allclose(v[:, i, j], num / den, atol=1e-9)


def test_imputation_noise_is_seeded_and_has_the_asked_spread():
    x = torch.zeros(1, 3, 40, 40)
    removed = torch.zeros(1, 40, 40, dtype=torch.bool)
    removed[0, 5:35, 5:35] = True
    a = M.noisy_linear_impute(x, removed, noise=0.01, generator=torch.Generator().manual_seed(3))
    b = M.noisy_linear_impute(x, removed, noise=0.01, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    filled = a[0][:, removed[0]]
    assert 0.009 < float(filled.std()) < 0.011  # the imputed value is 0 here: what is left is the noise
    assert torch.equal(a[0][:, ~removed[0]], x[0][:, ~removed[0]])


def test_imputation_refuses_bad_input():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="at least one pixel must be kept"):
        M.noisy_linear_impute(x, torch.ones(1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        M.noisy_linear_impute(x, torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match=r"must be \(1, 8, 8\)"):
        M.noisy_linear_impute(x, torch.ones(2, 8, 8, dtype=torch.bool))
    assert torch.equal(M.noisy_linear_impute(x + 1, torch.zeros(1, 8, 8, dtype=torch.bool)), x + 1)


def test_road_equals_pytorch_grad_cams_combined_road(lite0, case, monkeypatch):
    """pytorch-grad-cam's ROADCombined with its imputer's noise set to 0, on a map without ties:
    it thresholds at ``np.percentile`` (removing pixels strictly above it) where camlab removes
    exactly round(p·H·W) pixels — a pixel more or less at each step — and reports differences to
    the clean score, which cancel in (LeRF − MoRF) / 2."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    monkeypatch.setattr(road_ref.NoisyLinearImputer.__init__, "__defaults__", (0.0, road_ref.neighbors_weights))
    x, h, t = case
    x, t = x[:1], t[:1]
    jitter = torch.rand(h[:1].shape, generator=torch.Generator().manual_seed(0))
    h = 0.999 * h[:1] + 0.001 * jitter  # no ties
    ours = M.road(lite0.module, x, h, t, noise=0.0)
    theirs = road_ref.ROADCombined()(
        x.contiguous(), h.numpy(), [ClassifierOutputSoftmaxTarget(int(t[0]))], lite0.module
    )
    assert abs(float(ours.score[0]) - float(theirs[0])) <= 1e-3


def test_road_curves_equal_a_direct_computation(lite0, case):
    x, h, t = case
    r = M.road(lite0.module, x, h, t, fractions=(0.3, 0.7), noise=0.0)
    ranks = M.pixel_ranks(h)
    n = h[0].numel()
    for b in range(2):
        for k, p in enumerate((0.3, 0.7)):
            for curve, removed in ((r.morf, ranks[b] < round(p * n)), (r.lerf, ranks[b] >= n - round(p * n))):
                filled = road_ref.NoisyLinearImputer(noise=0.0)(x[b].contiguous(), (~removed.view(h.shape[1:])).float())
                assert float(curve[b, k]) == pytest.approx(
                    float(probs(lite0.module, filled[None], t[b : b + 1])[0]), abs=1e-4
                )
    assert torch.allclose(r.score, (r.lerf.mean(1) - r.morf.mean(1)) / 2)


def test_road_is_seeded(lite0, case):
    x, h, t = case
    a, b = M.road(lite0.module, x[:1], h[:1], t[:1], seed=4), M.road(lite0.module, x[:1], h[:1], t[:1], seed=4)
    assert torch.equal(a.morf, b.morf)
    assert torch.equal(a.lerf, b.lerf)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        M.road(lite0.module, x[:1], h[:1], t[:1], fractions=(0.0, 0.5))


def test_average_gain(lite0, case):
    x, h, t = case
    y = probs(lite0.module, x, t)
    o = probs(lite0.module, x * h[:, None], t)
    ref = (o - y).clamp_min(0) / (1 - y)
    assert torch.allclose(M.average_gain(lite0.module, x, h, t), ref, atol=1e-5)
    assert torch.allclose(
        M._gain(torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.25])), torch.zeros(2)
    )  # Y = 1: 0, not NaN


def test_equal_area_metrics_are_drop_increase_and_gain_of_the_binarised_map(lite0, case):
    x, h, t = case
    values = M.measure(lite0.module, x, h, t, ["drop_top20", "increase_top20", "gain_top20", "gain"])
    mask = M.top_fraction(h, 0.2)
    assert torch.equal(mask.flatten(1).sum(1), torch.full((2,), float(round(0.2 * h[0].numel()))))
    y = probs(lite0.module, x, t)
    o = probs(lite0.module, x * mask[:, None], t)
    assert torch.allclose(values["drop_top20"], ((y - o) / y).clamp_min(0), atol=1e-5)
    assert torch.equal(values["increase_top20"], o > y)
    assert torch.allclose(values["gain_top20"], (o - y).clamp_min(0) / (1 - y), atol=1e-5)
    assert list(values) == ["gain", "drop_top20", "increase_top20", "gain_top20"]


def test_ties_are_broken_at_random_not_in_raster_order():
    """A flat map: a stable sort would remove the top rows first; a random tie-break spreads the
    removed pixels over the image, and the seed fixes which."""
    flat = torch.zeros(1, 64, 64)
    half = M.top_fraction(flat, 0.5, seed=0)[0]
    top, bottom = float(half[:32].mean()), float(half[32:].mean())
    assert abs(top - bottom) < 0.05
    assert float(half.mean()) == 0.5
    assert torch.equal(half, M.top_fraction(flat, 0.5, seed=0)[0])
    assert not torch.equal(half, M.top_fraction(flat, 0.5, seed=1)[0])
    # values still come first: a strictly higher pixel always outranks a tied one
    h = torch.zeros(1, 8, 8)
    h[0, 7, 7] = 1.0
    assert int(M.pixel_ranks(h)[0, 63]) == 0


def test_deletion_uses_the_tie_break(lite0, case):
    x, _, t = case
    flat = torch.zeros(1, *x.shape[-2:])
    a = M.deletion(lite0.module, x[:1], flat, t[:1], n_steps=4, seed=0).scores
    b = M.deletion(lite0.module, x[:1], flat, t[:1], n_steps=4, seed=1).scores
    assert not torch.equal(a, b)  # which half is removed depends on the seed, not on the rows
