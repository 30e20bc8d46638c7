"""Batch norm folded into the convolution before it for the methods' passes (camlab.folding): the
same scores, maps and gradients as the network itself, pass counts unchanged, never folded across
a branch, remade when the weights or the modules change, never used while anything but the pass
counter is hooked in, and never for a target layer that is a folded convolution; TensorFlow-"same"
depthwise convolutions without their padded input copy."""

import copy

import pytest
import torch
from torch import nn

import camlab
from camlab.folding import _PadFreeSame, folded, keep_unfolded
from camlab.layers import count_forwards
from camlab.masking import score_batch


def _bn(channels: int, seed: int) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=g))
        bn.running_mean.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return bn


class ConvBN(nn.Module):
    """conv → batch norm → ReLU twice, then a linear head: every pair can be folded."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), _bn(6, 1)
        self.conv2, self.bn2 = nn.Conv2d(6, 6, 3, stride=2, bias=False), _bn(6, 2)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


class ConvUsedTwice(nn.Module):
    """The conv's output goes into the batch norm *and* around it: folding would change the
    branch, so the check against the network's own output must refuse it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn = nn.Conv2d(3, 6, 3, padding=1), _bn(6, 3)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = self.conv(x)
        return self.fc((self.bn(y) + y).mean((2, 3)))


@pytest.fixture
def x():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_pairs_are_folded_and_the_output_is_the_same(x):
    net = ConvBN().eval()
    fast = folded(net, x)
    assert fast is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is untouched
    with torch.inference_mode():
        assert torch.allclose(fast(x), net(x), atol=1e-5)
    assert folded(net, x) is fast  # made once


def test_a_conv_output_used_beside_the_batch_norm_is_not_folded(x):
    net = ConvUsedTwice().eval()
    assert folded(net, x) is net
    t = torch.zeros(3, dtype=torch.long)
    assert torch.equal(score_batch(net, x, t), torch.no_grad()(net)(x).softmax(1)[:, 0])


def test_the_copy_is_remade_when_a_weight_changes(x):
    net = ConvBN().eval()
    t = torch.arange(3)
    before = score_batch(net, x, t)
    with torch.no_grad():
        net.bn2.weight.mul_(3.0)  # in place: the tensor's version moves
        net.conv1.bias.add_(1.0)
    after = score_batch(net, x, t)
    with torch.no_grad():
        expected = net(x).softmax(1).gather(1, t[:, None]).squeeze(1)
    assert not torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(after, expected, atol=1e-6)
    net.conv2.weight = nn.Parameter(net.conv2.weight.detach().flip(0))  # replaced, not written in place
    with torch.no_grad():
        expected = net(x).softmax(1).gather(1, t[:, None]).squeeze(1)
    assert torch.allclose(score_batch(net, x, t), expected, atol=1e-6)


def test_the_copy_is_remade_when_a_module_is_replaced(x):
    """A new activation has no tensors: the copy must notice the module itself."""
    net = nn.Sequential(nn.Conv2d(3, 6, 3), _bn(6, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).eval()
    t = torch.arange(3)
    before = score_batch(net, x, t)
    net[2] = nn.Tanh()
    with torch.no_grad():
        expected = net(x).softmax(1).gather(1, t[:, None]).squeeze(1)
    after = score_batch(net, x, t)
    assert not torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(after, expected, atol=1e-6)


def test_same_padded_depthwise_convs_need_no_padded_copy(x):
    """timm's Conv2dSame pads its input asymmetrically (the odd pixel at the end); in the copy a
    depthwise one pads symmetrically with a zero row/column added to its kernel instead. Outputs
    and gradients must equal the network's for even and odd sizes."""
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 1), _bn(8, 5), Conv2dSame(8, 8, 3, stride=2, groups=8), _bn(8, 6), nn.ReLU(),
        Conv2dSame(8, 8, 5, stride=2, groups=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()
    fast = folded(net, x)
    assert sum(isinstance(m, _PadFreeSame) for m in fast.modules()) == 2  # folded or not, both depthwise
    g = torch.Generator().manual_seed(1)
    for size in ((16, 16), (17, 15), (13, 18)):
        xi = torch.randn(2, 3, *size, generator=g)
        with torch.no_grad():
            assert torch.allclose(fast(xi), net(xi), atol=1e-5), size
        xi.requires_grad_(True)
        (ours,) = torch.autograd.grad(fast(xi)[:, 1].sum(), xi)
        (theirs,) = torch.autograd.grad(net(xi)[:, 1].sum(), xi)
        assert torch.allclose(ours, theirs, atol=1e-5), size


def test_hooks_other_than_the_counter_keep_the_network(x):
    net = ConvBN().eval()
    seen = []
    handle = net.conv2.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    try:
        assert folded(net, x) is net
        score_batch(net, x, torch.zeros(3, dtype=torch.long))
        assert seen == [3]  # the user's hook saw the scoring pass
    finally:
        handle.remove()
    with count_forwards(net) as n:
        assert folded(net, x) is not net
        score_batch(net, x, torch.zeros(3, dtype=torch.long))
        with torch.inference_mode():
            folded(net, x)(x[:2])
    assert n.images == 5  # the counter hears of the folded copy's passes


def test_a_network_without_batch_norm_is_not_copied(x):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    assert folded(net, x) is net


def test_training_mode_and_opting_out_keep_the_network(x):
    net = ConvBN()
    assert folded(net.train(), x) is net
    assert folded(keep_unfolded(net.eval()), x) is net


def test_every_batch_norm_of_efficientnet_lite0_is_folded(lite0, real_batch):
    fast = folded(lite0.module, real_batch)
    assert fast is not lite0.module
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert camlab.device.module_memory_format(fast) is camlab.device.module_memory_format(lite0.module)
    reference = keep_unfolded(copy.deepcopy(lite0.module))
    with torch.inference_mode():
        assert torch.allclose(fast(real_batch), reference(real_batch), atol=1e-4)
    # the layers stay where they were: the copy keeps the module names (bn2 is now its activation)
    assert {n for n, _ in fast.named_modules()} == {n for n, _ in lite0.module.named_modules()}


def test_methods_capture_the_same_layer_in_the_copy(lite0, real_batch):
    """A method's first pass runs through the copy, a gradient method's backward too: a block's
    output and its gradient are the same there; a folded convolution's output is not, so that
    layer keeps the network."""
    x = real_batch[:1]
    reference = keep_unfolded(copy.deepcopy(lite0.module))
    fast = folded(lite0.module, x)
    assert folded(lite0.module, x, keep="blocks.6") is fast
    assert folded(lite0.module, x, keep="conv_head") is lite0.module  # conv_head's batch norm (bn2) is folded into it
    for method in (camlab.GroupCAM, camlab.GradCAM, camlab.GradCAMpp):
        for layer in ("blocks.6", "conv_head"):
            ours = method(lite0.module, layer)(x)
            theirs = method(reference, layer)(x)
            assert ours.n_forward == theirs.n_forward
            assert torch.allclose(ours.heatmaps, theirs.heatmaps, atol=1e-4), (method.name, layer)


def test_gradient_methods_take_their_gradient_in_the_copy(lite0, real_batch, monkeypatch):
    """Grad-CAM's pass and backward go through the folded copy (not the network) when the layer
    is not a folded convolution: its captured activations come from the copy's layer."""
    x = real_batch[:1]
    fast = folded(lite0.module, x)
    seen = []
    real_capture = camlab.methods.base.capture

    def spy(module, layer, **kw):
        seen.append(module)
        return real_capture(module, layer, **kw)

    monkeypatch.setattr(camlab.methods.base, "capture", spy)
    camlab.GradCAM(lite0.module, "blocks.6")(x)
    camlab.GradCAM(lite0.module, "conv_head")(x)
    assert seen[0] is fast and seen[1] is lite0.module
