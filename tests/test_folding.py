"""The folded twin (camlab.folding): fold() copies a network with its conv → batch-norm pairs folded
and checks it; a method built on a Classifier runs every pass on the twin (``cam.net``) — the same
maps and pass counts as on the bare module — except at a folded convolution; a bare module runs
as it is; a user's hook on the network does not change the map; a module left in training mode is
named; the twin is a snapshot (refold after changing the weights, an error after a move)."""

import copy
import dataclasses

import pytest
import torch
from camlab.folding import FoldedNetwork, PadFreeSameConv, check_twin, fold
from torch import nn

import camlab
from camlab.core.layers import count_forwards


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


@pytest.fixture
def own_lite0(lite0):
    """A Classifier of its own (a deep copy of the network, its own twin), free to be changed."""
    clf = dataclasses.replace(lite0, module=copy.deepcopy(lite0.module), fast=None)
    clf.refold()
    return clf


# --- fold() -------------------------------------------------------------------------------------


def test_pairs_are_folded_the_output_is_the_same_and_the_original_untouched(x):
    net = ConvBN().eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    twin = fold(net, x)
    assert isinstance(twin, FoldedNetwork)
    assert twin.folded == {"conv1", "conv2"}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in twin.network.modules())
    assert [type(m) for m in net.modules()] == [ConvBN, nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.Linear]
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())  # the original is untouched
    assert not twin.network.training
    with torch.no_grad():
        assert torch.allclose(twin.network(x), net(x), atol=1e-5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        twin.network = net


def test_a_conv_output_used_beside_the_batch_norm_is_not_folded(x):
    assert fold(ConvUsedTwice().eval(), x) is None


def test_a_network_without_batch_norm_has_no_twin(x):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    assert fold(net, x) is None


def test_fold_copies_no_hook_and_runs_none(x):
    net = ConvBN().eval()
    seen = []
    handle = net.conv2.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    try:
        twin = fold(net, x)
        with torch.no_grad():
            twin.network(x)
        assert seen == []
        assert not twin.network.conv2._forward_hooks
    finally:
        handle.remove()


def test_fold_refuses_a_model_in_training_mode_naming_the_module(x):
    with pytest.raises(RuntimeError, match=r"the model \(ConvBN\) is in training mode; call module.eval\(\)"):
        fold(ConvBN().train(), x)
    net = ConvBN().eval()
    net.bn2.train()
    with pytest.raises(
        RuntimeError, match=r"layer 'bn2' \(BatchNorm2d\) of the model is in training mode; call module.eval\(\)"
    ):
        fold(net, x)


@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (5, 2), (3, 1)])
def test_pad_free_same_conv_equals_conv2d_same(kernel, stride):
    """timm's Conv2dSame pads its input asymmetrically (the odd pixel at the end); PadFreeSameConv
    pads symmetrically with a zero row/column added to its kernel instead. Output and input
    gradient must be the same for even and odd sizes, in both layouts."""
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(8, 8, kernel, stride=stride, groups=8).eval()
    g = torch.Generator().manual_seed(1)
    for layout in (torch.contiguous_format, torch.channels_last):
        ours = PadFreeSameConv(conv, layout)
        for size in ((16, 16), (17, 15), (13, 18)):
            xi = torch.randn(2, 8, *size, generator=g).contiguous(memory_format=layout).requires_grad_(True)
            a, b = ours(xi), conv(xi)
            assert a.shape == b.shape, (size, layout)
            assert torch.allclose(a, b, atol=1e-5), (size, layout)
            w = torch.randn(a.shape, generator=g)
            (ga,) = torch.autograd.grad((a * w).sum(), xi)
            (gb,) = torch.autograd.grad((b * w).sum(), xi)
            assert torch.allclose(ga, gb, atol=1e-5), (size, layout)


def test_the_twin_of_same_padded_depthwise_convs(x):
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 1),
        _bn(8, 5),
        Conv2dSame(8, 8, 3, stride=2, groups=8),
        _bn(8, 6),
        nn.ReLU(),
        Conv2dSame(8, 8, 5, stride=2, groups=8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()
    twin = fold(net, x)
    assert [n for n, m in twin.network.named_modules() if isinstance(m, PadFreeSameConv)] == ["2", "5"]  # folded or not
    assert sum(type(m) is Conv2dSame for m in net.modules()) == 2  # the original keeps its own
    g = torch.Generator().manual_seed(1)
    for size in ((16, 16), (17, 15)):
        xi = torch.randn(2, 3, *size, generator=g, requires_grad=True)
        (ours,) = torch.autograd.grad(twin.network(xi)[:, 1].sum(), xi)
        (theirs,) = torch.autograd.grad(net(xi)[:, 1].sum(), xi)
        assert torch.allclose(ours, theirs, atol=1e-5), size


def test_every_batch_norm_of_efficientnet_lite0_is_folded(lite0, real_batch):
    twin = lite0.fast
    assert twin is not None
    assert len(twin.folded) == 49
    assert "conv_head" in twin.folded
    assert not any(isinstance(m, nn.BatchNorm2d) for m in twin.network.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in lite0.module.modules())
    memory_format = camlab.core.device.module_memory_format
    assert memory_format(twin.network) is memory_format(lite0.module)
    with torch.inference_mode():
        assert torch.allclose(twin.network(real_batch), lite0.module(real_batch), atol=1e-4)
    # the layers stay where they were: the twin keeps the module names (bn2 is now its activation)
    assert {n for n, _ in twin.network.named_modules()} == {n for n, _ in lite0.module.named_modules()}
    assert lite0.scorer is twin.network
    assert "fast=" not in repr(lite0)
    assert "49 convolutions folded" in repr(lite0.fast)


# --- methods on a Classifier and on a bare module -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "layer"),
    [
        (camlab.GradCAM, "blocks.6"),
        (camlab.ScoreCAM, "blocks.6"),
        (camlab.ClusterCAM, "blocks.6"),
        (camlab.ClusterCAM, "bn2"),
    ],
)
def test_the_classifier_gives_the_bare_modules_map(lite0, real_batch, method, layer):
    x = real_batch[:1]
    fast = method(lite0, layer)
    slow = method(lite0.module, layer)
    assert fast.net is lite0.fast.network
    assert slow.net is lite0.module
    assert fast.module is slow.module is lite0.module
    ours, theirs = fast(x), slow(x)
    assert ours.n_forward == theirs.n_forward
    assert torch.allclose(ours.heatmaps, theirs.heatmaps, atol=1e-4), (method.name, layer)


def test_a_folded_convolution_as_target_runs_on_the_original(lite0, real_batch):
    """conv_head's batch norm (bn2) is folded into it in the twin: its output differs there, so a
    method at conv_head runs on the network itself."""
    x = real_batch[:1]
    for method in (camlab.GradCAM, camlab.ClusterCAM):
        cam = method(lite0, "conv_head")
        assert cam.net is lite0.module
        ours, theirs = cam(x), method(lite0.module, "conv_head")(x)
        assert ours.n_forward == theirs.n_forward
        assert torch.allclose(ours.heatmaps, theirs.heatmaps, atol=1e-6)
    assert not lite0.fast.runs_layer("conv_head")
    assert lite0.fast.runs_layer("bn2")
    assert lite0.fast.runs_layer("blocks.6")


def test_every_pass_runs_on_net(lite0, real_batch):
    """A hook on ``cam.net`` sees every image the method pushes through (n_forward); the bare
    module sees none of them."""
    x = real_batch[:1]
    for cam in (
        camlab.GradCAM(lite0, "blocks.6"),
        camlab.SmoothGradCAMpp(lite0, "blocks.6", n_samples=2),
        camlab.ScoreCAM(lite0, "blocks.6"),
        camlab.GroupCAM(lite0, "blocks.6", n_groups=4),
        camlab.ClusterCAM(lite0, "blocks.6", n_clusters=4),
    ):
        with count_forwards(cam.net) as on_net, count_forwards(lite0.module) as on_module:
            exp = cam(x)
        assert on_net.images == exp.n_forward > 0, cam.name
        assert on_module.images == 0, cam.name
    cam = camlab.ClusterCAM(lite0, "blocks.6", n_clusters=4)
    state = cam.fit(x)
    assert state.n_forward == 5
    assert cam.replace(n_clusters=3).net is cam.net


def test_a_users_hook_on_the_module_does_not_change_the_map(lite0, real_batch):
    x = real_batch[:1]
    for method in (camlab.GradCAM, camlab.ClusterCAM):
        cam = method(lite0, "blocks.6")
        without = cam(x)
        seen = []
        handle = lite0.module.get_submodule("blocks.5").register_forward_hook(
            lambda m, i, o, seen=seen: seen.append(o.shape[0])
        )
        try:
            with_hook = cam(x)
            bare = method(lite0.module, "blocks.6")(x)
        finally:
            handle.remove()
        assert torch.equal(with_hook.heatmaps, without.heatmaps)
        assert with_hook.n_forward == without.n_forward
        assert torch.allclose(bare.heatmaps, without.heatmaps, atol=1e-4)
        assert sum(seen) == bare.n_forward  # the hook saw the bare module's passes only


BN = "blocks.2.0.bn1"  # one batch norm of efficientnet_lite0


@pytest.mark.parametrize("method", [camlab.GradCAM, camlab.ScoreCAM, camlab.ClusterCAM])
@pytest.mark.parametrize("on", ["classifier", "module"])
def test_one_batch_norm_in_training_mode_is_named(lite0, real_batch, method, on):
    """model.eval() and then one batch norm back in training mode: an error naming it, never
    torch's bare AssertionError, whether the method runs on the twin or on the module."""
    cam = method(lite0 if on == "classifier" else lite0.module, "blocks.6")
    bn = lite0.module.get_submodule(BN)
    bn.train()
    try:
        with pytest.raises(
            RuntimeError,
            match=rf"layer '{BN}' \(BatchNormAct2d\) of the model is in training mode; call module.eval\(\)",
        ):
            cam(real_batch[:1])
        with pytest.raises(RuntimeError, match=rf"layer '{BN}' .* training mode"):
            method(lite0 if on == "classifier" else lite0.module, "blocks.6")(real_batch[:1])
    finally:
        bn.eval()
    assert not any(m.training for m in lite0.module.modules())


def test_the_twin_in_training_mode_is_named_too(lite0, real_batch):
    cam = camlab.GradCAM(lite0, "blocks.6")
    cam.net.get_submodule("blocks.1").train()
    try:
        with pytest.raises(RuntimeError, match=r"layer 'blocks.1' \(Sequential\) of the model is in training mode"):
            cam(real_batch[:1])
    finally:
        cam.net.eval()


def test_refold_after_changing_the_weights(own_lite0, real_batch):
    clf, x = own_lite0, real_batch[:1]
    before = camlab.ClusterCAM(clf, "blocks.6")(x)
    with torch.no_grad():
        clf.module.get_submodule("blocks.6.0.bn3").weight.mul_(3.0)
        clf.module.get_submodule("blocks.4.0.conv_pw").weight.mul_(0.5)
        expected = clf.module(x).softmax(1)
    stale = camlab.ClusterCAM(clf, "blocks.6")(x)  # the twin is a snapshot: still the old network
    assert torch.allclose(stale.scores, before.scores)
    old = clf.fast
    assert clf.refold() is clf.fast is not old
    fresh = camlab.ClusterCAM(clf, "blocks.6")(x)
    bare = camlab.ClusterCAM(clf.module, "blocks.6")(x)
    assert not torch.allclose(fresh.scores, before.scores, atol=1e-4)
    assert torch.allclose(fresh.scores, expected.gather(1, fresh.targets[:, None]).squeeze(1), atol=1e-5)
    assert torch.allclose(fresh.heatmaps, bare.heatmaps, atol=1e-4)
    with torch.inference_mode():
        assert torch.allclose(clf.scorer(x), clf.module(x), atol=1e-4)


def test_a_converted_model_without_refold_is_an_error(own_lite0, real_batch):
    clf = own_lite0
    cam = camlab.GradCAM(clf, "blocks.6")
    clf.module.double()
    with pytest.raises(
        RuntimeError,
        match=r"in torch.float64 but its folded twin \(Classifier.fast\) is on cpu in torch.float32.*clf.refold\(\)",
    ):
        cam(real_batch[:1].double())
    with pytest.raises(RuntimeError, match=r"call clf.refold\(\)"):
        _ = clf.scorer
    clf.refold()
    exp = camlab.GradCAM(clf, "blocks.6")(real_batch[:1].double())
    assert exp.heatmaps.shape == (1, 224, 224)
    assert clf.fast.network.classifier.weight.dtype is torch.float64


def test_a_moved_model_without_refold_is_an_error(x):
    """A device move cannot happen on a CPU-only machine: the meta device stands in for it."""
    net = ConvBN().eval()
    twin = fold(net, x)
    check_twin(net, twin.network)  # same place: fine
    net.to("meta")
    with pytest.raises(
        RuntimeError,
        match=r"the model is on meta in torch.float32 but its folded twin \(Classifier.fast\) is on cpu.*refold",
    ):
        check_twin(net, twin.network)


def test_metrics_given_the_classifier_score_on_the_twin(lite0, real_batch):
    x = real_batch[:1]
    exp = camlab.GradCAM(lite0, "blocks.6")(x)
    with count_forwards(lite0.fast.network) as on_twin, count_forwards(lite0.module) as on_module:
        ours = camlab.metrics.measure(lite0, x, exp.heatmaps, exp.targets, ["drop", "road"])
    assert on_twin.images > 0
    assert on_module.images == 0
    theirs = camlab.metrics.measure(lite0.module, x, exp.heatmaps, exp.targets, ["drop", "road"])
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-4) for k in ours)


def test_the_training_mode_check_is_cheap(lite0):
    import time

    cam = camlab.GradCAM(lite0, "blocks.6")
    cam.check_network()
    start = time.perf_counter()
    for _ in range(100):
        cam.check_network()
    assert (time.perf_counter() - start) / 100 < 2e-3  # about 0.2 ms measured; loose for a busy host
