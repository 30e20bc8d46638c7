"""Models load in the memory layout measured fastest (channels_last on the CPU); inputs follow the
model's layout, and every method's map on the Classifier (channels_last, its passes on the folded
twin) equals the map of the same weights, as a bare module, in the default layout (never folded:
camlab before Step 7)."""

import copy

import pytest
import torch

import camlab
from camlab.core.device import module_memory_format, preferred_memory_format


@pytest.fixture(scope="module")
def default_layout(lite0):
    """The same network with its weights in torch's default (NCHW-contiguous) layout: a bare module, never folded."""
    return copy.deepcopy(lite0.module).to(memory_format=torch.contiguous_format)


def test_the_cpu_model_is_channels_last_and_inputs_follow(lite0, real_batch, default_layout):
    assert preferred_memory_format(torch.device("cpu")) is torch.channels_last
    assert module_memory_format(lite0.module) is torch.channels_last
    assert module_memory_format(default_layout) is torch.contiguous_format
    assert real_batch.is_contiguous(memory_format=torch.channels_last)  # preprocess follows the model
    with torch.no_grad():
        a, b = lite0.module(real_batch), default_layout(real_batch.contiguous())
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("name", sorted(camlab.METHODS))
def test_maps_equal_the_default_layout(lite0, real_batch, default_layout, name):
    x = real_batch[:1]
    kw = {"n_samples": 2} if name == "smoothgradcampp" else {}
    layer = lite0.target_layer if name == "cam" else "blocks.6"  # CAM needs the layer before pooling
    fast = camlab.METHODS[name](lite0, layer, **kw)(x)
    slow = camlab.METHODS[name](default_layout, layer, **kw)(x.contiguous())
    r = torch.corrcoef(torch.stack([fast.heatmaps.flatten(), slow.heatmaps.flatten()]).double())[0, 1]
    assert r >= 0.9999, f"{name}: r = {float(r):.6f} between channels_last and the default layout"
    assert fast.n_forward == slow.n_forward
