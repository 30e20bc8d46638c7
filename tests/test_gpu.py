"""On a CUDA device the methods give the CPU's maps (skipped without CUDA)."""

import pytest
import torch

import camlab


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["gradcam", "scorecam", "ablationcam", "clustercam"])
def test_cuda_matches_cpu(name, real_batch):
    cpu = camlab.load_model("efficientnet_lite0", device="cpu")
    gpu = camlab.load_model("efficientnet_lite0", device="cuda")
    kw = {"clustering": "kmeans"} if name == "clustercam" else {}
    a = camlab.METHODS[name](cpu.module, "blocks.6", **kw)(real_batch[:1])
    b = camlab.METHODS[name](gpu.module, "blocks.6", **kw)(real_batch[:1].cuda())
    assert b.heatmaps.device.type == "cpu"
    assert b.n_forward == a.n_forward
    assert torch.corrcoef(torch.stack([a.heatmaps.flatten(), b.heatmaps.flatten()]))[0, 1] > 0.99
