"""Every bad input gets a clear error that says what to do — or, where a valid but uninformative
map is the honest answer, a warning — and no hook stays attached afterwards. One table."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from camlab import metrics as M
from camlab.methods import METHODS


@pytest.fixture(scope="module")
def model(lite0):
    return lite0.module


def img(size=224, fill=None, channels=3, dtype=torch.float32, batch=1):
    if fill is None:
        x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))
    else:
        x = torch.full((batch, channels, size, size), float(fill))
    return x.to(dtype)


def gradcam(m, *a, **k):
    return METHODS["gradcam"](m, "bn2")(*a, **k)


def cluster(m, x, layer="blocks.6", targets=None, **k):
    return METHODS["clustercam"](m, layer, **k)(x, targets)


def nan_image():
    x = img()
    x[0, 0, 5, 5] = float("nan")
    return x


def inf_image():
    x = img()
    x[0, 1, 7, 9] = float("inf")
    return x


def in_inference_mode(m):
    with torch.inference_mode():
        return gradcam(m, img())


def training_mode(m):
    m.train()
    try:
        return gradcam(m, img())
    finally:
        m.eval()


def heat(values):
    return torch.as_tensor(values, dtype=torch.float32).expand(1, 224, 224)


# (case, call(model), expected exception or warning class, message regex)
CASES = [
    # the input batch
    ("not a tensor", lambda m: gradcam(m, [[0.0]]), TypeError, r"x must be a torch.Tensor .* classifier.preprocess"),
    ("one image without the batch axis", lambda m: gradcam(m, img()[0]), ValueError, r"4-D batch .* x.unsqueeze\(0\)"),
    (
        "an integer batch",
        lambda m: gradcam(m, img(dtype=torch.uint8)),
        TypeError,
        r"floating-point tensor, not torch.uint8",
    ),
    ("an empty batch", lambda m: gradcam(m, img()[:0]), ValueError, r"empty batch"),
    ("a NaN pixel", lambda m: cluster(m, nan_image()), ValueError, r"1 NaN or infinite value"),
    ("an infinite pixel", lambda m: cluster(m, inf_image()), ValueError, r"1 NaN or infinite value"),
    ("a NaN pixel, gradient method", lambda m: gradcam(m, nan_image()), ValueError, r"NaN or infinite"),
    (
        "a float64 batch",
        lambda m: gradcam(m, img(dtype=torch.float64)),
        TypeError,
        r"x is torch.float64 but the model's weights are torch.float32: convert the batch with x.to\(torch.float32\)",
    ),
    (
        "a float64 batch, Cluster-CAM",
        lambda m: cluster(m, img(dtype=torch.float64)),
        TypeError,
        r"x.to\(torch.float32\)",
    ),
    (
        "a 1-channel batch",
        lambda m: gradcam(m, img(channels=1)),
        ValueError,
        r"x has 1 channel\(s\) but the model's first convolution takes 3; preprocess",
    ),
    ("a 4-channel batch", lambda m: cluster(m, img(channels=4)), ValueError, r"x has 4 channel\(s\)"),
    ("an 8×8 image", lambda m: gradcam(m, img(8)), UserWarning, r"1×1 maps for a 8×8 input"),
    ("a 32×32 image", lambda m: cluster(m, img(32), n_clusters=4), UserWarning, r"1×1 maps for a 32×32 input"),
    ("an all-zero image", lambda m: cluster(m, img(fill=0.0)), UserWarning, r"a constant image is in the batch"),
    (
        "an all-zero image at bn2: a constant map",
        lambda m: gradcam(m, img(fill=0.0)),
        UserWarning,
        r"GradCAM: a heatmap is constant \(all zero\)",
    ),
    # targets
    ("a float target", lambda m: gradcam(m, img(), targets=3.7), TypeError, r"must be integers, got 3.7"),
    ("float targets in a list", lambda m: gradcam(m, img(batch=2), targets=[1.0, 2.5]), TypeError, r"must be integers"),
    ("a bool target", lambda m: gradcam(m, img(), targets=True), TypeError, r"must be integers, got True"),
    (
        "a target out of range",
        lambda m: gradcam(m, img(), targets=1000),
        ValueError,
        r"target class 1000 is out of range: the model has 1000 classes",
    ),
    ("a negative target", lambda m: cluster(m, img(), targets=-1), ValueError, r"target class -1 is out of range"),
    ("too few targets", lambda m: gradcam(m, img(batch=2), targets=[1]), ValueError, r"1 entries for a batch of 2"),
    # the model and its state
    (
        "not a module",
        lambda m: METHODS["gradcam"]("efficientnet", "bn2"),
        TypeError,
        r"module must be a torch nn.Module",
    ),
    ("training mode", training_mode, RuntimeError, r"training mode; call module.eval\(\)"),
    (
        "a gradient method in inference mode",
        in_inference_mode,
        RuntimeError,
        r"GradCAM needs gradients, which torch.inference_mode\(\) forbids: call it outside",
    ),
    # the layer
    (
        "a misspelt layer",
        lambda m: METHODS["gradcam"](m, "bnn2"),
        ValueError,
        r"unknown layer 'bnn2' .* closest valid names: bn2",
    ),
    (
        "a module from another model",
        lambda m: METHODS["gradcam"](m, nn.Conv2d(3, 3, 1)),
        ValueError,
        r"not a sub-module",
    ),
    (
        "a layer given as a number",
        lambda m: METHODS["gradcam"](m, 6),
        TypeError,
        r"a layer is a dotted name or an nn.Module",
    ),
    (
        "a layer without feature maps",
        lambda m: METHODS["gradcam"](m, "classifier")(img()),
        ValueError,
        r"CAM methods need B×N×h×w feature maps",
    ),
    # method settings
    (
        "Q above the channel count",
        lambda m: cluster(m, img(), n_clusters=400),
        ValueError,
        r"n_clusters \(Q\) = 400 is larger than the 320 channels",
    ),
    ("Q = 1", lambda m: cluster(m, img(), n_clusters=1), ValueError, r"n_clusters \(Q\) must be an integer ≥ 2, got 1"),
    (
        "K not below the channel count",
        lambda m: cluster(m, img(), clustering="spectral", n_clusters=4, n_eigvecs=320),
        ValueError,
        r"n_eigvecs \(K\) = 320 must be smaller than the 320 channels",
    ),
    ("α above 1", lambda m: cluster(m, img(), alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1.5"),
    ("α as text", lambda m: cluster(m, img(), alpha="abc"), ValueError, r"alpha must be in \[0, 1\], got 'abc'"),
    (
        "an unknown clustering",
        lambda m: cluster(m, img(), clustering="dbscan"),
        ValueError,
        r"unknown clustering 'dbscan'; use one of",
    ),
    ("an unknown coupling", lambda m: cluster(m, img(), coupling="sum"), ValueError, r"unknown coupling 'sum'"),
    (
        "an unknown baseline",
        lambda m: METHODS["scorecam"](m, "blocks.6", baseline="noise"),
        ValueError,
        r"unknown baseline 'noise'",
    ),
    (
        "an unknown score",
        lambda m: METHODS["scorecam"](m, "blocks.6", score="prob"),
        ValueError,
        r"unknown score 'prob'",
    ),
    (
        "batch size 0",
        lambda m: METHODS["scorecam"](m, "blocks.6", batch_size=0),
        ValueError,
        r"batch_size must be ≥ 1, got 0",
    ),
    (
        "more groups than channels",
        lambda m: METHODS["groupcam"](m, "blocks.6", n_groups=400)(img()),
        ValueError,
        r"n_groups=400 is larger than the 320 channels",
    ),
    # metrics
    (
        "a heatmap above 1",
        lambda m: M.confidence_drop(m, img(), heat(2.0), [1]),
        ValueError,
        r"heatmaps must lie in \[0, 1\]",
    ),
    (
        "a NaN heatmap",
        lambda m: M.deletion(m, img(), heat(float("nan")), [1]),
        ValueError,
        r"heatmaps must lie in \[0, 1\]",
    ),
    (
        "a heatmap of the wrong size",
        lambda m: M.insertion(m, img(), torch.zeros(1, 7, 7), [1]),
        ValueError,
        r"do not match the batch",
    ),
    (
        "zero deletion steps",
        lambda m: M.deletion(m, img(), heat(0.5), [1], n_steps=0),
        ValueError,
        r"n_steps must be ≥ 1, got 0",
    ),
    (
        "an unknown metric",
        lambda m: M.measure(m, img(), heat(0.5), [1], ["auc"]),
        ValueError,
        r"unknown metric 'auc'; available",
    ),
]


def hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


@pytest.mark.parametrize(("case", "call", "expected", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(model, case, call, expected, message):
    assert len(CASES) >= 30
    before = hooks(model)
    if issubclass(expected, Warning):
        with pytest.warns(expected, match=message):
            call(model)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(expected, match=message) as err:
                call(model)
        text = str(err.value)
        assert "report this as a bug" not in text
        assert "Double" not in text
        assert "multinomial" not in text
    assert hooks(model) == before  # no hook left behind
    assert not model.training


def test_valid_calls_do_not_warn(model, real_batch):
    """The warnings above are for uninformative maps only: a real image explained for its own
    class gives none."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        METHODS["gradcam"](model, "bn2")(real_batch[:1])
        METHODS["clustercam"](model, "blocks.6")(real_batch[:1])
    with torch.no_grad():  # a gradient method inside no_grad is fine: camlab turns gradients on itself
        METHODS["gradcam"](model, "bn2")(real_batch[:1])
    with torch.inference_mode():
        x = real_batch[:1].clone()  # an inference tensor …
    assert METHODS["gradcam"](model, "bn2")(x).heatmaps.shape == (1, 224, 224)  # … is accepted outside the block
