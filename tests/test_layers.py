import pytest
import torch

import camlab
from camlab import capture, resolve_layer


def test_resolve_by_name_and_module(lite0):
    name, mod = resolve_layer(lite0.module, "blocks.6")
    assert name == "blocks.6"
    assert mod is lite0.module.blocks[6]
    assert resolve_layer(lite0.module, lite0.module.bn2) == ("bn2", lite0.module.bn2)


def test_unknown_layer_lists_the_closest_names(lite0):
    with pytest.raises(ValueError, match="unknown layer 'block.6'") as err:
        resolve_layer(lite0.module, "block.6")
    msg = str(err.value)
    assert "'block.6'" in msg
    assert "blocks.6" in msg
    assert "conv_head" in msg


def test_foreign_module_and_wrong_type(lite0):
    with pytest.raises(ValueError, match="not a sub-module"):
        resolve_layer(lite0.module, torch.nn.ReLU())
    with pytest.raises(TypeError, match="a layer is a dotted name or an nn.Module, not int"):
        resolve_layer(lite0.module, 3)


def test_default_layer_is_bn2_with_relu6(lite0, real_batch):
    with torch.no_grad(), capture(lite0.module, lite0.target_layer) as cap:
        lite0.module(real_batch)
    a = cap.activations
    assert a.shape == (3, 1280, 7, 7)
    assert a.min() >= 0
    assert a.max() <= 6


def test_gradients_by_autograd_match_a_direct_computation(lite0, real_batch):
    x = real_batch[:1]
    with capture(lite0.module, "blocks.6", gradients=True) as cap:
        logits = lite0.module(x)
        g = cap.grad(logits[0, 5])
    # directly: run the head on a leaf copy of the activations
    a = cap.activations.detach().requires_grad_(True)
    m = lite0.module
    out = m.classifier(m.global_pool(m.bn2(m.conv_head(a))))
    (g_ref,) = torch.autograd.grad(out[0, 5], a)
    assert torch.allclose(g, g_ref, atol=1e-6)


def test_hooks_are_removed_also_after_an_exception(lite0, real_batch):
    layer = lite0.module.bn2

    def fail_inside(**kw):
        with capture(lite0.module, "bn2", **kw):
            assert len(layer._forward_hooks) == 1
            if kw.get("gradients"):
                assert torch.is_grad_enabled()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert len(layer._forward_hooks) == 0
    assert torch.is_grad_enabled()
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="boom"):
            fail_inside(gradients=True)
        assert not torch.is_grad_enabled()
    assert len(layer._forward_hooks) == 0
    assert camlab.layer_names(lite0.module)[0] == "conv_stem"


def test_count_forwards_counts_images_and_always_unhooks():
    import torch
    from torch import nn

    from camlab.core.layers import count_forwards

    net, tail = nn.Linear(3, 2), nn.Linear(2, 2)
    with count_forwards(net) as n:
        net(torch.zeros(4, 3))
        net(torch.zeros(1, 3))
        n.watch(tail)
        tail(torch.zeros(5, 2))
    assert n.images == 4 + 1 + 5
    assert not net._forward_pre_hooks
    assert not tail._forward_pre_hooks
    try:
        with count_forwards(net):
            raise KeyError("boom")
    except KeyError:
        pass
    assert not net._forward_pre_hooks
    net(torch.zeros(2, 3))  # outside the block nothing counts
    assert n.images == 10
