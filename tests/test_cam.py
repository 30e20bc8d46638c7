"""Vanilla CAM against a direct computation of eq 1–2, and the errors every method shares."""

import pytest
import torch
import torch.nn.functional as F

import camlab
from camlab import CAM


def direct_cam(model, x, classes):
    """Eq 1–2 without camlab: a plain forward hook, the classifier row, ReLU, upsample, min-max."""
    feats = {}
    handle = model.bn2.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    maps = torch.einsum("bn,bnhw->bhw", model.classifier.weight[classes], feats["a"]).clamp_min(0)
    up = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = up.amin(dim=(1, 2), keepdim=True)
    hi = up.amax(dim=(1, 2), keepdim=True)
    return torch.where(hi > lo, (up - lo) / (hi - lo), torch.zeros_like(up))  # an all-negative map is all zero


def test_cam_equals_eq_1_2(lite0, real_batch):
    exp = CAM(lite0.module, lite0.target_layer)(real_batch)
    top1 = lite0.module(real_batch).argmax(1)
    assert torch.equal(exp.targets, top1)
    ref = direct_cam(lite0.module, real_batch, top1)
    assert torch.allclose(exp.heatmaps, ref, atol=1e-5)
    assert exp.heatmaps.shape == (3, 224, 224)
    assert exp.heatmaps.device.type == "cpu"
    assert exp.n_forward == 3
    assert exp.seconds > 0
    assert exp.method == "cam"
    assert exp.layer == "bn2"
    probs = lite0.module(real_batch).softmax(1).gather(1, top1[:, None])[:, 0]
    assert torch.allclose(exp.scores, probs.detach(), atol=1e-6)


def test_raw_map_is_eq_2_before_post_processing(lite0, real_batch):
    """``Explanation.raw`` keeps the sizes that min–max scaling removes: eq 2 itself, B×h×w."""
    exp = CAM(lite0.module, lite0.target_layer)(real_batch, targets=[1, 2, 3])
    feats = {}
    handle = lite0.module.bn2.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    with torch.no_grad():
        lite0.module(real_batch)
    handle.remove()
    eq2 = torch.einsum("bn,bnhw->bhw", lite0.module.classifier.weight[[1, 2, 3]], feats["a"])
    assert exp.raw.shape == (3, 7, 7)
    assert (exp.raw < 0).any()
    assert torch.allclose(exp.raw, eq2.detach(), atol=1e-4)
    again = camlab.normalize_maps(camlab.upsample(exp.raw.clamp_min(0), (224, 224)))
    assert torch.allclose(again, exp.heatmaps, atol=1e-5)


def test_targets_int_and_sequence(lite0, real_batch):
    cam = CAM(lite0.module, lite0.target_layer)
    one = cam(real_batch, targets=7)
    assert one.targets.tolist() == [7, 7, 7]
    seq = cam(real_batch, targets=[1, 2, 3])
    assert seq.targets.tolist() == [1, 2, 3]
    ref = direct_cam(lite0.module, real_batch, torch.tensor([1, 2, 3]))
    assert torch.allclose(seq.heatmaps, ref, atol=1e-5)
    assert torch.isfinite(seq.heatmaps).all()


@pytest.mark.parametrize(
    ("targets", "match"),
    [(1000, "out of range.*1000 classes"), (-1, "out of range"), ([1, 2], "2 entries for a batch of 3")],
)
def test_bad_targets(lite0, real_batch, targets, match):
    with pytest.raises(ValueError, match=match):
        CAM(lite0.module, lite0.target_layer)(real_batch, targets=targets)


def test_bad_input_shapes(lite0, real_batch):
    cam = CAM(lite0.module, lite0.target_layer)
    with pytest.raises(ValueError, match="4-D batch.*2-D tensor"):
        cam(torch.zeros(224, 224))
    with pytest.raises(ValueError, match="unsqueeze"):
        cam(real_batch[0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        cam(real_batch.numpy())


def test_unknown_layer(lite0):
    with pytest.raises(ValueError, match="closest valid names"):
        CAM(lite0.module, "bn3")


def test_non_gap_network_is_refused(real_batch):
    alexnet = camlab.load_model("alexnet", device="cpu", weights=None)
    with pytest.raises(ValueError, match="global average pooling"):
        CAM(alexnet.module, alexnet.target_layer)(real_batch[:1])


def test_non_gap_layer_is_refused(lite0, real_batch):
    with pytest.raises(ValueError, match="320 channels"):
        CAM(lite0.module, "blocks.6")(real_batch[:1])


def test_gap_network_with_random_weights():
    resnet = camlab.load_model("resnet50", device="cpu", weights=None)
    exp = CAM(resnet.module, resnet.target_layer)(torch.randn(2, 3, 224, 224))
    assert exp.heatmaps.shape == (2, 224, 224)
    assert torch.isfinite(exp.heatmaps).all()


class _ConstantFeatures(torch.nn.Module):
    """A GAP network whose last feature maps are constant (or all negative)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.features = torch.nn.Identity()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        a = self.features(torch.full((x.shape[0], 4, 5, 5), self.value))
        return self.fc(a.mean((2, 3)))


@pytest.mark.parametrize("value", [0.0, 1.0, -2.0])
def test_constant_or_negative_maps_give_zeros_not_nan(value):
    exp = CAM(_ConstantFeatures(value).eval(), "features")(torch.zeros(2, 3, 32, 32))
    assert torch.isfinite(exp.heatmaps).all()
    assert float(exp.heatmaps.abs().max()) == 0.0


def test_methods_registry():
    assert camlab.METHODS["cam"] is CAM


def test_normalize_maps_and_its_affine_form():
    """s(M) = (M − min) / (max − min) per map, zeros for a constant map; ``normalizing_affine``
    gives the same as (M − lo)·scale, which the weighted coupling sums before upsampling."""
    from camlab.core.maps import normalize_maps, normalizing_affine

    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 5, 7, generator=g)
    maps[1, 2] = 4.0  # constant
    flat = maps.flatten(-2)
    lo, hi = flat.min(-1).values, flat.max(-1).values
    expect = (flat - lo[..., None]) / (hi - lo)[..., None]
    expect[1, 2] = 0.0
    out = normalize_maps(maps)
    assert torch.allclose(out.flatten(-2), expect, atol=1e-6)
    assert float(out[1, 2].abs().max()) == 0.0
    lo2, scale = normalizing_affine(maps)
    assert torch.allclose((maps - lo2[..., None, None]) * scale[..., None, None], out, atol=1e-6)
    assert float(scale[1, 2]) == 0.0


def test_common_scale_keeps_relative_strength(lite0, real_batch):
    """Two classes on one scale: per image the stronger class peaks at 1 and the weaker keeps its
    ratio of peaks, which min–max scaling (both peaks at 1) would hide."""
    cam = CAM(lite0.module, lite0.target_layer)
    top2 = lite0.module(real_batch).topk(2).indices
    a, b = cam(real_batch, targets=top2[:, 0]), cam(real_batch, targets=top2[:, 1])
    sa, sb = camlab.core.maps.common_scale([a.raw, b.raw], (224, 224))
    peak_a, peak_b = sa.flatten(1).amax(1), sb.flatten(1).amax(1)
    assert torch.allclose(torch.maximum(peak_a, peak_b), torch.ones(3))
    up = [camlab.upsample(r.clamp_min(0), (224, 224)).flatten(1).amax(1) for r in (a.raw, b.raw)]
    assert torch.allclose(peak_b / peak_a, up[1] / up[0], rtol=1e-4)
    zero = camlab.core.maps.common_scale([-torch.ones(1, 7, 7)], (14, 14))[0]
    assert zero.shape == (1, 14, 14)
    assert not zero.any()
