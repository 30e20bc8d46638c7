"""The later baselines — LayerCAM, HiResCAM, EigenCAM — against pytorch-grad-cam, and the Sobel
control, which must not depend on the model."""

import copy

import numpy as np
import pytest
import torch

from camlab import METHODS, EigenCAM, GradCAM, HiResCAM, LayerCAM, SobelCAM
from camlab.methods.eigen import principal_projection

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction  # noqa: E402


def pearson(a, b) -> list[float]:
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    return [float(np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1]) for i in range(len(a))]


def pgc_map(cls, model, layer, x, targets):
    with cls(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


@pytest.mark.parametrize("layer", ["blocks.6", "bn2"])
@pytest.mark.parametrize(("ours", "theirs"), [("layercam", "LayerCAM"), ("hirescam", "HiResCAM")])
def test_elementwise_gradient_methods_equal_pytorch_grad_cam(lite0, real_batch, layer, ours, theirs):
    exp = METHODS[ours](lite0.module, layer)(real_batch)
    ref = pgc_map(getattr(pgc, theirs), lite0.module, layer, real_batch, exp.targets)
    assert min(pearson(exp.heatmaps, ref)) >= 0.999


@pytest.mark.parametrize("layer", ["blocks.6", "bn2"])
def test_eigencam_equals_the_sign_corrected_projection_of_pytorch_grad_cam(lite0, real_batch, layer):
    """pytorch-grad-cam's EigenCAM class projects without a sign correction (its map can come out
    inverted); the reference here is its ``get_2d_projection_with_sign_correction`` on the same
    activations, with its own ReLU and scaling."""
    exp = EigenCAM(lite0.module, layer)(real_batch)
    acts = {}
    handle = lite0.module.get_submodule(layer).register_forward_hook(lambda m, i, o: acts.setdefault("a", o.detach()))
    try:
        with torch.no_grad():
            lite0.module(real_batch)
    finally:
        handle.remove()
    proj = get_2d_projection_with_sign_correction(acts["a"].float().contiguous().numpy())
    ref = scale_cam_image(np.maximum(proj, 0), target_size=tuple(real_batch.shape[-2:][::-1]))
    assert min(pearson(exp.heatmaps, ref)) >= 0.999
    assert exp.n_forward == len(real_batch)


def test_eigencam_sign_is_fixed_and_class_independent(lite0, real_batch):
    x = real_batch[:1]
    a, b = EigenCAM(lite0.module, "blocks.6")(x, targets=1), EigenCAM(lite0.module, "blocks.6")(x, targets=500)
    assert torch.equal(a.heatmaps, b.heatmaps)
    acts = torch.randn(2, 5, 4, 4)
    p = principal_projection(acts)
    # the same maps negated give the same projection: the sign no longer depends on the SVD
    assert torch.allclose(principal_projection(-acts), p, atol=1e-5)
    assert bool((p.flatten(1).amax(1) >= p.flatten(1).amin(1).abs()).all())


def test_principal_projection_is_the_first_principal_component():
    """Against a direct computation: the projection on the top eigenvector of the channel covariance."""
    torch.manual_seed(0)
    acts = torch.randn(1, 6, 5, 5, dtype=torch.float64)
    f = acts[0].flatten(1).T
    f = f - f.mean(0)
    _, vecs = torch.linalg.eigh(f.T @ f)
    ref = f @ vecs[:, -1]
    ref = -ref if ref.min().abs() > ref.max().abs() else ref
    assert torch.allclose(principal_projection(acts)[0].flatten(), ref, atol=1e-10)


def test_hirescam_is_gradcam_where_the_gradient_is_constant_in_space(lite0, real_batch):
    """At bn2 (global average pooling and a linear head follow) ∂S/∂F is w/Z at every position."""
    a = HiResCAM(lite0.module, "bn2")(real_batch)
    b = GradCAM(lite0.module, "bn2")(real_batch)
    assert min(pearson(a.heatmaps, b.heatmaps)) >= 0.9999
    c = HiResCAM(lite0.module, "blocks.6")(real_batch)
    d = GradCAM(lite0.module, "blocks.6")(real_batch)
    assert min(pearson(c.heatmaps, d.heatmaps)) < 0.999  # at a layer inside the network they differ


def test_layercam_direct_computation(lite0, real_batch):
    x = real_batch[:1]
    acts = {}
    layer = lite0.module.get_submodule("blocks.6")
    handle = layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        logits = lite0.module(x)
        t = int(logits.argmax())
        (g,) = torch.autograd.grad(logits[0, t], acts["a"])
    finally:
        handle.remove()
    raw = (g.clamp_min(0) * acts["a"]).sum(1).clamp_min(0).detach()
    ref = torch.nn.functional.interpolate(raw[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    exp = LayerCAM(lite0.module, "blocks.6")(x, targets=t)
    assert torch.allclose(exp.heatmaps, ref, atol=1e-4)


def test_sobel_ignores_the_model_and_the_target(lite0, real_batch):
    x = real_batch[:2]
    a = SobelCAM(lite0.module, "bn2")(x)
    rand = copy.deepcopy(lite0.module)
    torch.manual_seed(0)
    for m in rand.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    b = SobelCAM(rand, "blocks.6")(x, targets=[3, 4])
    assert torch.equal(a.heatmaps, b.heatmaps)


def test_sobel_equals_a_direct_sobel_filter():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    torch.manual_seed(1)
    x = torch.rand(1, 3, 20, 24, dtype=torch.float64)
    gray = (0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2]).numpy()
    gx = scipy_ndimage.sobel(gray, axis=1, mode="mirror")
    gy = scipy_ndimage.sobel(gray, axis=0, mode="mirror")
    from camlab.methods.sobel import sobel_edges

    assert np.allclose(sobel_edges(x)[0].numpy(), 0.5 * (np.abs(gx) + np.abs(gy)))
