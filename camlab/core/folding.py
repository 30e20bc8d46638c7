"""Batch norm folded into the convolution before it: a twin of the network for the methods' passes.

In eval mode a batch norm is a fixed affine map per channel, so a ``Conv2d`` whose output goes
straight into it is one ``Conv2d`` with changed weights and bias (torch's
``torch.nn.utils.fusion.fuse_conv_bn_eval``). :func:`fold` makes, once and explicitly, a deep copy
of a network with every such pair folded (timm's ``BatchNormAct2d`` keeps its drop and activation)
and its depthwise TensorFlow-"same" convolutions replaced by :class:`PadFreeSameConv`, which pads
without copying its input. It returns a :class:`FoldedNetwork`, or None when there is nothing to
fold or the copy's output differs from the network's. It keeps no state of its own.

Every layer's output is the same in the twin except a folded convolution's (it now includes its
batch norm). So a method whose target layer is a folded convolution runs on the network itself;
for any other layer it can run on the twin: downstream of the layer the two compute the same
function, so the layer's activations and their gradients are the same to float rounding. The
twin's passes are cheaper; the measurements are in ``benchmarks/RESULTS.md``.

Who uses it: :func:`camlab.load_model` folds the network into ``Classifier.fast``; a method built on
the :class:`~camlab.Classifier` runs every pass on the twin (``cam.net``), a method built on a bare
``nn.Module`` runs that module as it is, never folded. The twin is a snapshot: after changing the
weights of ``clf.module``, or moving it, call ``clf.refold()`` and build the methods again. A hook
on ``clf.module`` does not see the passes of a method built on the Classifier (the twin runs, and
the map does not change); a hook on ``cam.net`` sees every pass of that method.

Pairs are found by following the tensors of one pass of an example input: a batch norm is folded
only when its input is the very tensor a convolution returned, and each runs once and sits in one
place in the network. The whole network must be in eval mode: :func:`fold` and the methods raise
an error naming the first module left in training mode.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .device import module_device, module_memory_format, to_model_format

__all__ = ["fold", "FoldedNetwork", "PadFreeSameConv", "check_eval", "check_twin"]

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# the folded copy's output may differ from the original's by float rounding only
_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class FoldedNetwork:
    """A folded twin of a network (made by :func:`fold`).

    Attributes:
        network: the folded copy, in eval mode, on the network's device and in its memory layout.
        folded: dotted names of the convolutions that now include their batch norm.
    """

    network: nn.Module
    folded: frozenset[str]

    def runs_layer(self, name: str) -> bool:
        """Whether a pass captured at layer ``name`` can run on the twin: any layer but a folded
        convolution (whose output now includes its batch norm) and a name the twin lacks."""
        if name in self.folded:
            return False
        try:
            self.network.get_submodule(name)
        except AttributeError:
            return False
        return True

    def network_for(self, module: nn.Module, layer: str) -> nn.Module:
        """The network to run a pass captured at ``layer`` on: the twin, or ``module`` itself."""
        return self.network if self.runs_layer(layer) else module

    def __repr__(self) -> str:
        return f"FoldedNetwork({type(self.network).__name__}, {len(self.folded)} convolutions folded)"


def check_eval(module: nn.Module) -> None:
    """Raise a RuntimeError naming the first module of ``module`` (itself included) in training
    mode. One walk of the modules, cheap enough for every call."""
    stack = [module]
    while stack:
        m = stack.pop()
        if m is None:
            continue
        if m.training:
            break
        stack.extend(m._modules.values())
    else:
        return
    name = next(n for n, sub in module.named_modules() if sub.training)
    what = (
        f"the model ({type(module).__name__})"
        if not name
        else f"layer {name!r} ({type(module.get_submodule(name)).__name__}) of the model"
    )
    raise RuntimeError(
        f"{what} is in training mode; call module.eval() on the whole model first "
        "(batch norm and dropout in training mode change the maps)"
    )


def _dtype(module: nn.Module) -> torch.dtype | None:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def check_twin(module: nn.Module, twin: nn.Module) -> None:
    """Raise a RuntimeError when ``module`` is no longer on the device or in the dtype of its
    folded ``twin`` (it was moved or converted after the twin was made)."""
    if twin is module:
        return
    here, there = (module_device(module), _dtype(module)), (module_device(twin), _dtype(twin))
    if here != there:
        raise RuntimeError(
            f"the model is on {here[0]} in {here[1]} but its folded twin (Classifier.fast) is on {there[0]} in "
            f"{there[1]}: the twin is a snapshot made by load_model; after moving or converting clf.module call "
            "clf.refold() and build the method again"
        )


class PadFreeSameConv(nn.Module):
    """timm's depthwise ``Conv2dSame`` (TensorFlow's "same" padding, its odd pixel at the bottom and
    right) without the padded copy of the input that ``F.pad`` makes each pass: where the padding
    at the end is one more than at the start, the kernel has a zero row (column) at its start and
    the convolution pads both sides by the larger amount — the same windows and the same sums. For
    the depthwise convolutions, where the copy is most of the cost (measured in
    ``benchmarks/RESULTS.md``; the stem's dense convolution was slower, so it keeps its pad).

    Built from the convolution's weight, bias, stride and groups; its four kernels (a zero row
    and/or column added or not) are made here, in ``memory_format``.
    """

    def __init__(self, conv: nn.Conv2d, memory_format: torch.memory_format = torch.contiguous_format):
        super().__init__()
        if conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError("PadFreeSameConv takes an undilated convolution with zero padding")
        self.in_channels, self.out_channels, self.groups = conv.in_channels, conv.out_channels, conv.groups
        self.kernel_size, self.stride = tuple(conv.kernel_size), tuple(conv.stride)
        w = conv.weight.detach()
        self.weight = nn.Parameter(
            w.clone().contiguous(memory_format=memory_format), requires_grad=conv.weight.requires_grad
        )
        self.bias = (
            None
            if conv.bias is None
            else nn.Parameter(conv.bias.detach().clone(), requires_grad=conv.bias.requires_grad)
        )
        for eh, ew in ((0, 1), (1, 0), (1, 1)):
            self.register_buffer(
                f"kernel_{eh}{ew}", F.pad(w, (ew, 0, eh, 0)).contiguous(memory_format=memory_format), persistent=False
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from timm.layers.padding import get_same_padding

        ph = get_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], 1)
        pw = get_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], 1)
        odd = (ph % 2, pw % 2)
        kernel = self.weight if odd == (0, 0) else self._buffers[f"kernel_{odd[0]}{odd[1]}"]
        return F.conv2d(x, kernel, self.bias, self.stride, ((ph + 1) // 2, (pw + 1) // 2), 1, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"groups={self.groups}"
        )


def _conv_types() -> tuple[type, ...]:
    """Convolutions whose output is linear in their weight and bias: torch's, and timm's
    TensorFlow-style "same"-padded one (not e.g. timm's weight-standardised ``StdConv2d``)."""
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # pragma: no cover - timm is a dependency of camlab
        return (nn.Conv2d,)
    return (nn.Conv2d, Conv2dSame)


def _activation_after(bn: nn.Module) -> nn.Module | None:
    """What is left of a batch-norm module once its normalisation is folded away, or None when
    it is a kind this module does not know."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # pragma: no cover - timm is a dependency of camlab
        return None
    if type(bn) is BatchNormAct2d:
        return nn.Sequential(OrderedDict(drop=bn.drop, act=bn.act))  # BatchNormAct2d's forward after the norm
    return None


def _set(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent), leaf, new)


def _drop_same_pads(fast: nn.Module, memory_format: torch.memory_format) -> None:
    """Replace the depthwise, undilated ``Conv2dSame`` modules of ``fast`` by :class:`PadFreeSameConv`."""
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # pragma: no cover - timm is a dependency of camlab
        return
    names = [
        name
        for name, m in fast.named_modules()
        if type(m) is Conv2dSame
        and m.dilation == (1, 1)
        and m.groups == m.in_channels > 1
        and m.padding_mode == "zeros"
    ]
    for name in names:
        _set(fast, name, PadFreeSameConv(fast.get_submodule(name), memory_format))


def fold(module: nn.Module, example: torch.Tensor) -> FoldedNetwork | None:
    """A folded twin of ``module``, made from one pass of ``example`` (a B×C×H×W batch the network
    accepts) and checked on it; None when there is nothing to fold or the check fails. ``module``
    is not changed. Raises a RuntimeError naming the first module in training mode, if any."""
    check_eval(module)
    if not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):  # e.g. VGG, AlexNet: no copy at all
        return None
    with torch.inference_mode(False), torch.no_grad():  # the copy's weights are normal tensors
        return _fold(module, to_model_format(example, module))


def _fold(module: nn.Module, x: torch.Tensor) -> FoldedNetwork | None:
    # copy the network without its hooks (a hook may hold tensors that cannot be copied)
    memo = {
        id(hooks): type(hooks)()
        for m in module.modules()
        for name in _HOOKS
        if (hooks := getattr(m, name, None)) is not None
    }
    fast = copy.deepcopy(module, memo)
    where: dict[int, list[str]] = {}
    for name, m in fast.named_modules(remove_duplicate=False):
        where.setdefault(id(m), []).append(name)
    outputs: dict[
        int, tuple[nn.Module, torch.Tensor]
    ] = {}  # id(conv output) → (conv, output): the tensor is kept, so no id is reused
    calls: dict[int, int] = {}
    pairs: list[tuple[nn.Module, nn.Module]] = []

    def on_conv(m: nn.Module, _inputs, out) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        if isinstance(out, torch.Tensor):
            outputs[id(out)] = (m, out)

    def on_bn(m: nn.Module, inputs) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        hit = outputs.get(id(inputs[0])) if inputs else None
        if hit is not None and hit[1] is inputs[0]:
            pairs.append((hit[0], m))

    handles = []
    convs = _conv_types()
    for m in fast.modules():
        if type(m) in convs:
            handles.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(on_bn))
    try:
        reference = fast(x)  # the copy before folding computes what the network computes
    finally:
        for h in handles:
            h.remove()
    outputs.clear()
    if not isinstance(reference, torch.Tensor):
        return None
    names = set()
    for conv, bn in pairs:
        rest = _activation_after(bn)
        # fold only a conv and a batch norm that each run once and sit in one place in the network
        if (
            rest is None
            or bn.running_mean is None
            or calls[id(conv)] != 1
            or calls[id(bn)] != 1
            or len(where[id(conv)]) != 1
            or len(where[id(bn)]) != 1
        ):
            continue
        _set(fast, where[id(conv)][0], fuse_conv_bn_eval(conv, bn))
        _set(fast, where[id(bn)][0], rest)
        names.add(where[id(conv)][0])
    if not names:
        return None
    layout = module_memory_format(module)
    fast.to(memory_format=layout)
    _drop_same_pads(fast, layout)  # their kernels made in the copy's final layout
    out = fast(x)
    scale = float(reference.abs().max().clamp_min(1e-12))
    if (
        out.shape != reference.shape
        or not bool(torch.isfinite(out).all())
        or float((out - reference).abs().max()) > _TOLERANCE * scale
    ):
        return None
    return FoldedNetwork(fast.eval(), frozenset(names))
