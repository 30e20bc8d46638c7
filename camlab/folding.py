"""Batch norm folded into the convolution before it, for the passes that only need scores.

In eval mode a batch norm is a fixed affine map per channel, so a ``Conv2d`` whose output goes
straight into it is one ``Conv2d`` with changed weights and bias (torch's
``torch.nn.utils.fusion.fuse_conv_bn_eval``). The passes of the methods — the masked batches of
Score-, Group- and Cluster-CAM and of the metrics, every method's first, hooked pass, and the
gradient passes of the Grad-CAM family — run through the network :func:`folded` returns: a copy
with every such pair folded (timm's ``BatchNormAct2d`` keeps its activation). Every layer's output
is the same in the copy except a folded convolution's (it now includes its batch norm), so a
target layer that is one keeps the original network; downstream of any other layer the two
networks compute the same function, so a gradient taken there is the same too (to float rounding).
On this project's CPU that made a batch of six efficientnet_lite0 images about 0.7× as costly
(``benchmarks/RESULTS.md``).

The copy is made from the first batch that needs it and checked on it: pairs are found by
following the tensors of one pass (a batch norm is folded only when its input is the very tensor
a convolution returned), and the folded copy's output must match the original's, else the
original is used. It is remade when any parameter, buffer or submodule of the model changes (an
in-place update bumps a tensor's version, ``.to()`` makes new tensors). The original network runs
instead whenever anything but camlab's pass counter (:class:`camlab.layers.count_forwards`) is
hooked into it — a capture of a layer, a user's hook — so hooks see every pass they expect; the
copy tells the original's pass counters of every batch it runs, so pass counts do not change.
:func:`keep_unfolded` opts a model out.
"""

from __future__ import annotations

import copy
import itertools
import weakref
from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .device import module_memory_format
from .layers import count_forwards

__all__ = ["folded", "keep_unfolded"]

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# model → (its modules and tensors as seen when the copy was made, the folded copy or None, the
# names of the convolutions folded in it)
_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[list, list], nn.Module | None, frozenset[str]]]" = weakref.WeakKeyDictionary()
_UNFOLDED: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()
# the folded copy's output may differ from the original's by float rounding only
_TOLERANCE = 1e-3


def keep_unfolded(module: nn.Module) -> nn.Module:
    """Never fold ``module``'s batch norms: every pass runs the network as it is. Returns it."""
    _UNFOLDED.add(module)
    _CACHE.pop(module, None)
    return module


def _scan(module: nn.Module) -> tuple[list[nn.Module], list[torch.Tensor]] | None:
    """``module``'s modules and tensors (parameters and buffers, module by module), in one walk;
    None when anything but camlab's pass counters on the root is hooked into it."""
    modules, tensors = [], []
    for m in module.modules():
        for name in _HOOKS:
            hooks = getattr(m, name, None)
            if hooks and not (m is module and name == "_forward_pre_hooks" and all(isinstance(getattr(h, "__self__", None), count_forwards) for h in hooks.values())):
                return None
        modules.append(m)
        tensors.extend(t for t in itertools.chain(m._parameters.values(), m._buffers.values()) if t is not None)
    return modules, tensors


def _stamp(t: torch.Tensor) -> tuple:
    # what changes when a tensor is written in place (its version), moved or re-laid out (its storage)
    return (t._version, t.data_ptr(), t.device, t.dtype)


def _seen(modules: list[nn.Module], tensors: list[torch.Tensor]) -> tuple[list, list]:
    return [weakref.ref(m) for m in modules], [(weakref.ref(t), _stamp(t)) for t in tensors]


def _unchanged(seen: tuple[list, list], modules: list[nn.Module], tensors: list[torch.Tensor]) -> bool:
    """True when ``modules`` and ``tensors`` are the very ones ``seen`` recorded (weak references,
    so a replaced submodule or parameter is noticed even when a new one reuses its address), no
    tensor written since."""
    refs, stamps = seen
    return (
        len(refs) == len(modules)
        and len(stamps) == len(tensors)
        and all(ref() is m for ref, m in zip(refs, modules))
        and all(ref() is t and stamp == _stamp(t) for (ref, stamp), t in zip(stamps, tensors))
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


def _fold(module: nn.Module, x: torch.Tensor) -> tuple[nn.Module | None, frozenset[str]]:
    """A copy of ``module`` with every conv → batch-norm pair of ``x``'s pass folded, checked
    against the original's output on ``x``, and the names of the folded convolutions; None when
    there is nothing to fold or the check fails."""
    if not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):  # e.g. VGG, AlexNet: no copy at all
        return None, frozenset()
    # copy the network without its hooks (a hook may hold tensors that cannot be copied)
    memo = {id(hooks): type(hooks)() for m in module.modules() for name in _HOOKS if (hooks := getattr(m, name, None)) is not None}
    fast = copy.deepcopy(module, memo)
    where = {}
    for name, m in fast.named_modules(remove_duplicate=False):
        where.setdefault(id(m), []).append(name)
    outputs: dict[int, tuple[nn.Module, torch.Tensor]] = {}  # id(conv output) → (conv, output): the tensor is kept, so no id is reused
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
        with torch.inference_mode():
            reference = fast(x)
    finally:
        for h in handles:
            h.remove()
    outputs.clear()
    if not isinstance(reference, torch.Tensor):
        return None, frozenset()
    names = set()
    for conv, bn in pairs:
        rest = _activation_after(bn)
        # fold only a conv and a batch norm that each run once and sit in one place in the network
        if rest is None or bn.running_mean is None or calls[id(conv)] != 1 or calls[id(bn)] != 1 or len(where[id(conv)]) != 1 or len(where[id(bn)]) != 1:
            continue
        for name, new in ((where[id(conv)][0], fuse_conv_bn_eval(conv, bn)), (where[id(bn)][0], rest)):
            parent, _, leaf = name.rpartition(".")
            setattr(fast.get_submodule(parent), leaf, new)
        names.add(where[id(conv)][0])
    if not names:
        return None, frozenset()
    swapped = _drop_same_pads(fast)
    fast.to(memory_format=module_memory_format(module))
    for m in swapped:  # their kernels in the copy's final layout
        m.prepare()
    with torch.inference_mode():
        out = fast(x)
    scale = float(reference.abs().max().clamp_min(1e-12))
    if out.shape != reference.shape or not bool(torch.isfinite(out).all()) or float((out - reference).abs().max()) > _TOLERANCE * scale:
        return None, frozenset()
    fast.register_forward_pre_hook(_Relay(module))
    return fast, frozenset(names)


class _PadFreeSame(nn.Conv2d):
    """timm's ``Conv2dSame`` (TensorFlow's "same" padding, its odd pixel at the bottom and right)
    without the padded copy of the input that ``F.pad`` makes each pass: where the padding at the
    end is one more than at the start, the kernel gains a zero row (column) at its start and the
    convolution pads both sides by the larger amount — the same windows and the same sums. For the
    depthwise convolutions of the copy, where the copy is most of the cost (six 96×112×112 maps:
    2.0 → 1.0 ms on this project's CPU; the stem's dense convolution was slower, so it keeps its pad).
    The class of a module of the copy is swapped to this one, so it keeps its name and parameters."""

    _kernels: dict[tuple[int, int], torch.Tensor]

    def prepare(self) -> None:
        """The four kernels (an extra zero row and/or column at the start or not), made once, from
        the copy's weights in their final layout; normal tensors, so gradient passes can use them."""
        self._kernels = {
            (eh, ew): nn.functional.pad(self.weight.detach(), (ew, 0, eh, 0)).contiguous(memory_format=module_memory_format(self))
            for eh in (0, 1)
            for ew in (0, 1)
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from timm.layers.padding import get_same_padding

        ph = get_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], 1)
        pw = get_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], 1)
        kernel = self._kernels[(ph % 2, pw % 2)]
        return nn.functional.conv2d(x, kernel, self.bias, self.stride, ((ph + 1) // 2, (pw + 1) // 2), 1, self.groups)


def _drop_same_pads(fast: nn.Module) -> list[_PadFreeSame]:
    """Swap the depthwise, undilated ``Conv2dSame`` modules of the copy to :class:`_PadFreeSame`;
    returns them."""
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # pragma: no cover - timm is a dependency of camlab
        return []
    swapped = [m for m in fast.modules() if type(m) is Conv2dSame and m.dilation == (1, 1) and m.groups == m.in_channels > 1 and m.padding_mode == "zeros"]
    for m in swapped:
        m.__class__ = _PadFreeSame
    return swapped


class _Relay:
    """The copy's pre-hook: tells the original network's pass counters of each batch (a weak
    reference, so the copy does not keep the original alive)."""

    def __init__(self, module: nn.Module):
        self._module = weakref.ref(module)

    def __call__(self, _copy: nn.Module, inputs) -> None:
        module = self._module()
        if module is not None:
            for hook in list(module._forward_pre_hooks.values()):
                if isinstance(getattr(hook, "__self__", None), count_forwards):
                    hook(module, inputs)


def folded(module: nn.Module, x: torch.Tensor, keep: str | None = None) -> nn.Module:
    """The network to run ``x`` through: the folded copy of ``module`` when it has one (made from
    ``x`` on first use), else ``module`` itself. ``keep``: a layer whose output the caller
    captures; when it is a folded convolution, ``module`` itself."""
    if module.training or module in _UNFOLDED:
        return module
    scan = _scan(module)
    if scan is None:  # hooked: hooks must see the network's own passes
        return module
    entry = _CACHE.get(module)
    if entry is None or not _unchanged(entry[0], *scan):
        with torch.inference_mode(False), torch.no_grad():  # the copy's weights are normal tensors
            entry = (_seen(*scan), *_fold(module, x[:1]))
        _CACHE[module] = entry
    _, fast, convs = entry
    return module if fast is None or keep in convs else fast
