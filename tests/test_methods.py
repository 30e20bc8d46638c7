"""The CAM family on one pipeline, checked against pytorch-grad-cam, torchcam and direct computations.

Definitions that differ from an anchor are reproduced by an option and the difference is named
in the test that uses it.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from toys import ConstantFeatures, SkipAround

import camlab
from camlab import METHODS, AblationCAM, GradCAMpp, GroupCAM, ScoreCAM, SmoothGradCAMpp

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


def pearson(a: torch.Tensor, b) -> list[float]:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return [float(np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1]) for i in range(len(a))]


def layer_module(model, name):
    return dict(model.named_modules())[name]


@pytest.fixture(scope="module")
def small_batch(lite0, dev_records):
    """Two real images at 128×128: the same model, fewer pixels, for the many-pass checks."""
    x = lite0.preprocess([dev_records[i].path for i in (57, 140)])
    return F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False, antialias=True)


def pgc_cam(cls, model, layer, x, targets, **attrs):
    with cls(model=model, target_layers=[layer_module(model, layer)]) as cam:
        for k, v in attrs.items():
            setattr(cam, k, v)
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


# --- gradient methods ------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["bn2", "blocks.6"])
@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        ("gradcam", "GradCAM", {}),
        # pytorch-grad-cam adds 1e-6 to the denominator of α; eps=1e-6 reproduces it (default 0)
        ("gradcampp", "GradCAMPlusPlus", {"eps": 1e-6}),
        ("xgradcam", "XGradCAM", {}),
    ],
)
def test_gradient_methods_equal_pytorch_grad_cam(lite0, real_batch, layer, ours, theirs, kwargs):
    exp = METHODS[ours](lite0.module, layer, **kwargs)(real_batch)
    ref = pgc_cam(getattr(pgc, theirs), lite0.module, layer, real_batch, exp.targets)
    assert min(pearson(exp.heatmaps, ref)) >= 0.999


def test_gradcampp_eps_matters_at_the_last_layer(lite0, real_batch):
    """The exact formula (eps=0) and pytorch-grad-cam's eps=1e-6 are measurably different maps."""
    exact = GradCAMpp(lite0.module, "blocks.6")(real_batch)
    with_eps = GradCAMpp(lite0.module, "blocks.6", eps=1e-6)(real_batch)
    assert (exact.heatmaps - with_eps.heatmaps).abs().max() > 1e-3


def test_smoothgradcampp_one_clean_sample_is_gradcampp(lite0, real_batch):
    plain = GradCAMpp(lite0.module, "bn2")(real_batch)
    smooth = SmoothGradCAMpp(lite0.module, "bn2", n_samples=1, noise_std=0.0)(real_batch)
    assert torch.allclose(plain.heatmaps, smooth.heatmaps, atol=1e-5)
    assert smooth.n_forward == 2 * len(real_batch)


def test_smoothgradcampp_is_seeded(lite0, real_batch):
    a = SmoothGradCAMpp(lite0.module, "blocks.6", n_samples=3, noise_std=0.2, seed=1)(real_batch[:1])
    b = SmoothGradCAMpp(lite0.module, "blocks.6", n_samples=3, noise_std=0.2, seed=1)(real_batch[:1])
    c = SmoothGradCAMpp(lite0.module, "blocks.6", n_samples=3, noise_std=0.2, seed=2)(real_batch[:1])
    assert torch.equal(a.heatmaps, b.heatmaps)
    assert not torch.equal(a.heatmaps, c.heatmaps)
    assert a.n_forward == 1 + 3


# --- Score-CAM --------------------------------------------------------------------------------


def test_scorecam_softmax_option_equals_pytorch_grad_cam(lite0, small_batch):
    """pytorch-grad-cam: softmax over channels of the masked logits, no baseline, and masks
    upsampled with align_corners=True (nn.UpsamplingBilinear2d)."""
    x = small_batch[1:2]
    exp = ScoreCAM(lite0.module, "blocks.6", score="logit", baseline=None, weighting="softmax", align_corners=True)(x)
    ref = pgc_cam(pgc.ScoreCAM, lite0.module, "blocks.6", x, exp.targets, batch_size=64)
    assert min(pearson(exp.heatmaps, ref)) >= 0.999


def test_scorecam_softmax_delta_option_equals_torchcam(lite0, small_batch):
    """torchcam: softmax over channels of logit(masked) − logit(clean). It min-max scales each map
    *before* upsampling it into a mask (we scale after, s(Up(F)) as eq 8 says) and returns the
    7×7 map, which we upsample here: equal to r ≥ 0.9999, not bit for bit."""
    torchcam = pytest.importorskip("torchcam.methods")
    x = small_batch[1:2]
    exp = ScoreCAM(lite0.module, "blocks.6", score="logit", baseline=None, weighting="softmax_delta")(x)
    with torchcam.ScoreCAM(lite0.module, "blocks.6", batch_size=64, input_shape=tuple(x.shape[1:])) as extractor:
        with torch.no_grad():
            out = lite0.module(x)
        low = extractor(class_idx=exp.targets.tolist(), scores=out)[0]
    ref = F.interpolate(low[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert min(pearson(exp.heatmaps, ref)) >= 0.9999


def direct_scorecam(model, x, layer, score="softmax"):
    """Eq 8–9 for one image, every channel, no skipping: w_n = S(X ⊙ s(Up(F_n))) − S(0)."""
    feats = {}
    h = layer_module(model, layer).register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    with torch.no_grad():
        logits = model(x)
    h.remove()
    c = int(logits.argmax())
    S = (lambda z: model(z).softmax(1)[:, c]) if score == "softmax" else (lambda z: model(z)[:, c])
    a = feats["a"][0]
    up = F.interpolate(a[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-30), torch.zeros_like(up))
    with torch.no_grad():
        w = torch.cat([S(x * masks[k : k + 64, None]) for k in range(0, len(masks), 64)]) - S(torch.zeros_like(x))
    cam = torch.einsum("n,nhw->hw", w, a).clamp_min(0)
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam - cam.min()) / (cam.max() - cam.min()), w


@pytest.mark.parametrize("layer", ["bn2", "blocks.6"])
def test_scorecam_paper_definition_and_skipping(lite0, small_batch, layer):
    """bn2 has many constant channels (skipped), blocks.6 none: both equal the unskipped direct eq 8–9."""
    x = small_batch[:1]
    exp = ScoreCAM(lite0.module, layer)(x)
    ref, w = direct_scorecam(lite0.module, x, layer)
    assert torch.allclose(exp.heatmaps[0], ref, atol=1e-4)
    acts_constant = int(camlab.core.maps.is_constant(_acts(lite0.module, x, layer))[0].sum())
    assert exp.n_forward == 1 + 1 + (w.numel() - acts_constant)
    if layer == "bn2":
        assert acts_constant > 0  # the skip really happened


def _acts(model, x, layer):
    with torch.no_grad(), camlab.capture(model, layer) as cap:
        model(x)
    return cap.activations


def test_scorecam_batches_and_batch_size_do_not_change_the_map(lite0, small_batch):
    together = ScoreCAM(lite0.module, "blocks.6", batch_size=7)(small_batch, targets=[1, 2])
    apart = [
        ScoreCAM(lite0.module, "blocks.6", batch_size=64)(small_batch[i : i + 1], targets=[t])
        for i, t in enumerate([1, 2])
    ]
    assert torch.allclose(together.heatmaps, torch.cat([e.heatmaps for e in apart]), atol=1e-5)
    assert together.n_forward == sum(e.n_forward for e in apart)


# --- Ablation-CAM -----------------------------------------------------------------------------


def test_ablationcam_logit_option_equals_pytorch_grad_cam(lite0, small_batch):
    """At bn2 (minimum 0 after ReLU6) pytorch-grad-cam zeroes the channel and scores logits: the
    same definition as score='logit'. (Where a layer goes negative it ablates to min − 1e7 instead.)"""
    x = small_batch[:1]
    exp = AblationCAM(lite0.module, "bn2", score="logit")(x)
    ref = pgc_cam(pgc.AblationCAM, lite0.module, "bn2", x, exp.targets)
    assert min(pearson(exp.heatmaps, ref)) >= 0.999


def test_ablationcam_paper_definition_against_a_direct_computation(lite0, small_batch):
    """Eq 7 with softmax scores at blocks.6 (which has negative values), full forwards in the test."""
    x = small_batch[1:2]
    exp = AblationCAM(lite0.module, "blocks.6")(x)
    a = _acts(lite0.module, x, "blocks.6")
    n = a.shape[1]
    with torch.no_grad():
        p = lite0.module(x).softmax(1)
        c = int(p.argmax())
        ablated = []
        for k in range(0, n, 64):
            batch = a.repeat(min(64, n - k), 1, 1, 1)
            batch[torch.arange(len(batch)), torch.arange(k, k + len(batch))] = 0
            h = lite0.module.blocks[6].register_forward_hook(lambda m, i, o, batch=batch: batch)
            ablated.append(lite0.module(x.expand(len(batch), -1, -1, -1)).softmax(1)[:, c])
            h.remove()
    w = (p[0, c] - torch.cat(ablated)) / p[0, c]
    cam = torch.einsum("n,nhw->hw", w, a[0]).clamp_min(0)
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    ref = (cam - cam.min()) / (cam.max() - cam.min())
    assert torch.allclose(exp.heatmaps[0], ref, atol=1e-4)
    assert exp.n_forward == 1 + n


@pytest.mark.parametrize("layer", ["bn2", "blocks.6", "blocks.5"])
def test_ablationcam_split_equals_full_forward(lite0, small_batch, layer):
    x = small_batch[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the real model splits without the fallback warning
        split = AblationCAM(lite0.module, layer)(x)
    full = AblationCAM(lite0.module, layer, split=False)(x)
    assert torch.allclose(split.heatmaps, full.heatmaps, atol=1e-5)
    assert torch.allclose(split.extras["ablated_scores"], full.extras["ablated_scores"], atol=1e-5)
    # the same passes counted, but the split run's ablated copies are partial passes through the tail
    assert split.n_forward == full.n_forward
    assert full.passes == (full.n_forward, 0)
    assert split.passes == (len(x), split.n_forward - len(x))
    assert split.extras["tail_passes"] > 0


def test_ablationcam_falls_back_with_a_warning_when_it_cannot_split():
    model = SkipAround().eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(RuntimeWarning, match="cannot split"):
        fallback = AblationCAM(model, "inner")(x)
    assert torch.allclose(fallback.heatmaps, AblationCAM(model, "inner", split=False)(x).heatmaps)


# --- Group-CAM --------------------------------------------------------------------------------


def test_groupcam_against_a_direct_computation(lite0, small_batch):
    x = small_batch[:1]
    G = 4
    exp = GroupCAM(lite0.module, "blocks.6", n_groups=G)(x)
    m = lite0.module
    a = _acts(m, x, "blocks.6").requires_grad_(True)
    logits = m.classifier(m.global_pool(m.bn2(m.conv_head(a))))
    c = int(logits.argmax())
    (g,) = torch.autograd.grad(logits[0, c], a)
    a = a.detach()[0]
    weighted = g[0].mean((1, 2))[:, None, None] * a  # N×h×w
    size = a.shape[0] // G  # 320 channels → 4 groups of 80
    with torch.no_grad():
        blurred = camlab.masking.blur(x)
        base = m(blurred).softmax(1)[0, c]
        total, live = 0, 0
        for k in range(G):
            gm = weighted[k * size : (k + 1) * size].sum(0).clamp_min(0)
            up = F.interpolate(gm[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
            if up.max() == up.min():
                continue
            live += 1
            mask = (up - up.min()) / (up.max() - up.min())
            score = m(x * mask + blurred * (1 - mask)).softmax(1)[0, c] - base
            total = total + score * mask
    total = total.clamp_min(0)
    ref = (total - total.min()) / (total.max() - total.min())
    assert torch.allclose(exp.heatmaps[0], ref, atol=1e-4)
    assert exp.n_forward == 1 + 1 + live  # the image, the blurred image, one pass per non-constant group


def test_groupcam_rejects_more_groups_than_channels(lite0, small_batch):
    with pytest.raises(ValueError, match="n_groups=400 is larger than the 320 channels"):
        GroupCAM(lite0.module, "blocks.6", n_groups=400)(small_batch[:1])


# --- what every method shares ------------------------------------------------------------------

FAST_KWARGS = {"smoothgradcampp": {"n_samples": 2}, "groupcam": {"n_groups": 2}, "clustercam": {"n_clusters": 2}}


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("value", [0.0, 1.0, -2.0])
def test_no_nan_for_constant_or_negative_maps(name, value):
    model = ConstantFeatures(value).eval()
    exp = METHODS[name](model, "features", **FAST_KWARGS.get(name, {}))(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(exp.heatmaps).all()
    assert exp.heatmaps.shape == (2, 32, 32)


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_hooks_are_gone_after_every_call_and_every_error(name, lite0, small_batch):
    model = lite0.module
    before = _hook_count(model)
    method = METHODS[name](model, "bn2", **FAST_KWARGS.get(name, {}))
    exp = method(small_batch[:1])
    assert _hook_count(model) == before
    assert torch.isfinite(exp.heatmaps).all()
    assert exp.heatmaps.shape == (1, 128, 128)
    assert exp.method == name
    assert exp.n_forward >= 1
    assert exp.params["target_layer"] == "bn2"
    with pytest.raises(ValueError, match="out of range"):
        method(small_batch[:1], targets=5000)
    assert _hook_count(model) == before


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "xgradcam", "groupcam", "ablationcam", "clustercam"])
def test_batches_equal_single_images(name, lite0, small_batch):
    method = METHODS[name](lite0.module, "blocks.6", **FAST_KWARGS.get(name, {}))
    together = method(small_batch, targets=[3, 7])
    apart = torch.cat([method(small_batch[i : i + 1], targets=t).heatmaps for i, t in enumerate([3, 7])])
    # batched and single convolutions differ in the last float bits; XGrad-CAM divides by
    # Σ_ij F_n(i,j), which is near 0 for some channels of this signed layer and magnifies them
    assert torch.allclose(together.heatmaps, apart, atol=1e-3)


def test_bad_options_are_clear_errors(lite0):
    with pytest.raises(ValueError, match="unknown score 'prob'"):
        ScoreCAM(lite0.module, "bn2", score="prob")
    with pytest.raises(ValueError, match="unknown weighting"):
        ScoreCAM(lite0.module, "bn2", weighting="max")
    with pytest.raises(ValueError, match="unknown baseline"):
        ScoreCAM(lite0.module, "bn2", baseline="noise")
    with pytest.raises(ValueError, match="n_samples must be"):
        SmoothGradCAMpp(lite0.module, "bn2", n_samples=0)
    with pytest.raises(ValueError, match="batch_size must be"):
        AblationCAM(lite0.module, "bn2", batch_size=0)


def test_registry_names():
    assert {
        "cam",
        "gradcam",
        "gradcampp",
        "smoothgradcampp",
        "xgradcam",
        "layercam",
        "hirescam",
        "eigencam",
        "ablationcam",
        "scorecam",
        "groupcam",
        "clustercam",
        "sobel",
    } <= set(METHODS)
    assert all(cls.name == name for name, cls in METHODS.items())
