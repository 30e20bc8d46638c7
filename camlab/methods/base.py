"""The one pipeline that every CAM method runs through.

``BaseCAM.__call__`` is :meth:`BaseCAM.forward` (validate the input, resolve the targets, one
forward pass with the target layer captured, ``torch.autograd.grad`` for methods that need
gradients), then the single override point :meth:`BaseCAM.compute` (channel weights or a spatial
map), then :meth:`BaseCAM.finish`, the shared post-processing: weighted sum,
ReLU, bilinear upsampling and min-max normalisation. Everything stays in torch on
the model's device until the heatmaps are returned.

Every pass of a method runs on one network, ``cam.net``, chosen when the method is built: given a
:class:`~camlab.Classifier`, its folded twin (:mod:`camlab.folding`) unless the target layer is a
folded convolution; given a bare ``nn.Module``, that module as it is.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..core.device import default_batch_size, module_device, to_model_format
from ..core.explanation import Explanation
from ..core.folding import check_eval, check_twin
from ..core.layers import capture, count_forwards, resolve_layer
from ..core.maps import is_constant, normalize_maps, upsample

__all__ = ["BaseCAM", "Context", "resolve_targets", "check_input"]

Targets = int | Sequence[int] | torch.Tensor | None


def check_input(x: Any, module: nn.Module | None = None) -> torch.Tensor:
    """Insist on a finite floating B×C×H×W tensor; with ``module``, one whose dtype and channel
    count the model accepts. Every error says what to do."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"x must be a torch.Tensor batch B×3×H×W, not {type(x).__name__}; use classifier.preprocess(images)"
        )
    if x.dim() != 4:
        hint = " (for one image use x.unsqueeze(0))" if x.dim() == 3 else ""
        raise ValueError(f"x must be a 4-D batch B×3×H×W; got a {x.dim()}-D tensor of shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(
            f"x must be a floating-point tensor, not {x.dtype}; "
            "use classifier.preprocess(images), which normalises them"
        )
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(
            f"x contains {bad} NaN or infinite value(s); "
            "a CAM of a non-finite input means nothing — check the preprocessing"
        )
    if module is not None:
        weight = next((p for p in module.parameters() if p.is_floating_point()), None)
        if weight is not None and weight.dtype != x.dtype:
            raise TypeError(
                f"x is {x.dtype} but the model's weights are {weight.dtype}: "
                f"convert the batch with x.to({weight.dtype})"
            )
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is not None and x.shape[1] != conv.in_channels:
            raise ValueError(
                f"x has {x.shape[1]} channel(s) but the model's first convolution takes {conv.in_channels}; "
                "preprocess the images with classifier.preprocess (it converts grayscale and RGBA to RGB)"
            )
    return x


def resolve_targets(targets: Targets, logits: torch.Tensor) -> torch.Tensor:
    """``None`` → top-1 per image; an int → that class for all; a sequence → one per image.
    Class indices must be integers: a float such as 3.7 is an error, never truncated."""
    batch, n_classes = logits.shape
    if targets is None:
        return logits.argmax(dim=1)
    t = torch.as_tensor(targets)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(
            f"targets are class indices and must be integers, got {targets!r}; pass e.g. targets=3 or targets=[3, 7]"
        )
    t = (t.expand(batch) if t.dim() == 0 else t).long().flatten()  # one class for the whole batch, or one per image
    if t.numel() != batch:
        raise ValueError(f"targets has {t.numel()} entries for a batch of {batch} images")
    bad = t[(t < 0) | (t >= n_classes)]
    if bad.numel():
        raise ValueError(
            f"target class {int(bad[0])} is out of range: the model has {n_classes} classes (0 … {n_classes - 1})"
        )
    return t.to(logits.device)


@dataclass
class Context:
    """What one forward pass of the pipeline produced, handed to :meth:`BaseCAM.compute`."""

    x: torch.Tensor  # B×3×H×W input on the model's device
    logits: torch.Tensor  # B×C, detached
    activations: torch.Tensor  # B×N×h×w at the target layer, detached
    targets: torch.Tensor  # (B,) long
    gradients: torch.Tensor | None = None  # ∂logit_target/∂activations, B×N×h×w
    n_forward: int = 0  # images pushed through the model: set from ``forwards`` when the call ends
    extras: dict[str, Any] = field(default_factory=dict)
    forwards: count_forwards | None = None  # counts every image through the model during the call


class BaseCAM:
    """Base class of every CAM method. Subclasses override :meth:`compute` only.

    Args:
        module: a :class:`~camlab.Classifier` (its passes run on its folded twin, ``clf.fast``)
            or an ``nn.Module`` (run as it is, never folded).
        target_layer: dotted layer name or the layer module.
        batch_size: images per forward pass for methods that run many (masked inputs);
            ``None`` picks :func:`camlab.core.device.default_batch_size` for the model's device.

    Attributes:
        module: the network (``clf.module`` for a Classifier).
        net: the network every pass of the method runs on: the twin, or ``module`` when there is
            none or the target layer is a folded convolution (its output differs in the twin).
            Hooks on ``net`` see every pass; hooks on a Classifier's ``module`` see none of them,
            and do not change the map.
    """

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    # what the method returns: Explanation, or a subclass whose fields the method fills from ctx.extras
    explanation_type: ClassVar[type[Explanation]] = Explanation

    def __init__(self, module: Any, target_layer: str | nn.Module, batch_size: int | None = None):
        from ..core.models import Classifier

        fast = None
        if isinstance(module, Classifier):
            fast, module_ = module.fast, module.module
        elif isinstance(module, nn.Module):
            module_ = module
        else:
            raise TypeError(f"module must be a torch nn.Module or a camlab Classifier, not {type(module).__name__}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.source = module  # what the method was built on (ClusterCAM.replace builds on it again)
        self.module = module_
        self.layer_name, self.layer = resolve_layer(module_, target_layer)
        self.net = module_ if fast is None else fast.network_for(module_, self.layer_name)
        self._batch_size = None if batch_size is None else int(batch_size)

    @property
    def batch_size(self) -> int:
        return self._batch_size if self._batch_size is not None else default_batch_size(self.device)

    @property
    def device(self) -> torch.device:
        return module_device(self.module)

    def params(self) -> dict[str, Any]:
        """The method's parameters, recorded in every :class:`Explanation`."""
        return {"target_layer": self.layer_name}

    def compute(self, ctx: Context) -> torch.Tensor:
        """Return channel weights (B×N) or a spatial map (B×h×w). The one override point."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, targets: Targets = None) -> Explanation:
        start = time.perf_counter()
        with count_forwards(self.net) as forwards:  # the one place passes are counted
            ctx = self.forward(x, targets)
            ctx.forwards = forwards
            with torch.no_grad():
                out = self.compute(ctx)
        ctx.n_forward, ctx.forwards = forwards.images, None
        return self.finish(ctx, out, start)

    def forward(self, x: torch.Tensor, targets: Targets = None) -> Context:
        """The pipeline's first half: validate ``x``, one forward pass with the target layer
        captured (and the gradient of the target logits when the method needs it)."""
        x = to_model_format(check_input(x, self.module), self.module)
        self.check_network()
        if self.needs_gradients and torch.is_inference_mode_enabled():
            raise RuntimeError(
                f"{type(self).__name__} needs gradients, which torch.inference_mode() forbids: "
                "call it outside that block "
                "(inside torch.no_grad() is fine: camlab turns gradients on for its own pass)"
            )
        if x.is_inference():  # made under inference_mode: a normal copy can take part in autograd
            x = x.clone()
        flat = x.flatten(1)
        if bool((flat.amax(1) == flat.amin(1)).any()):
            warnings.warn(
                "a constant image is in the batch (every pixel the same value): "
                "there is nothing in it for a heatmap to point at",
                UserWarning,
                stacklevel=3,
            )
        # self.net: the folded twin (camlab.folding) unless the target layer is a folded convolution;
        # downstream of the layer the two networks compute the same function, so its activations and
        # their gradients are the same to float rounding
        net = self.net
        with capture(net, self.layer_name, gradients=self.needs_gradients) as cap:
            with torch.set_grad_enabled(self.needs_gradients):
                logits = net(x)
            if cap.activations is None:
                raise RuntimeError(f"the forward pass never reached layer {self.layer_name!r}")
            t = resolve_targets(targets, logits)
            grads = None
            if self.needs_gradients:
                grads = cap.grad(logits.gather(1, t[:, None]).sum()).detach()
            acts = cap.activations.detach()
        if acts.dim() != 4:
            raise ValueError(
                f"layer {self.layer_name!r} outputs shape {tuple(acts.shape)}; CAM methods need B×N×h×w feature maps"
            )
        if acts.shape[-2:].numel() == 1:
            warnings.warn(
                f"layer {self.layer_name!r} gives 1×1 maps for a {x.shape[-2]}×{x.shape[-1]} input: "
                "every CAM of it is constant and the heatmap says nothing; "
                "use larger images (classifier.preprocess resizes them to the model's size) or an earlier layer",
                UserWarning,
                stacklevel=3,
            )
        return Context(x=x, logits=logits.detach(), activations=acts, targets=t, gradients=grads)

    def check_network(self) -> None:
        """Before a call: every module of ``module`` and ``net`` in eval mode (else an error naming
        the first one in training mode), and the twin on ``module``'s device and dtype."""
        check_eval(self.module)
        if self.net is not self.module:
            check_eval(self.net)
            check_twin(self.module, self.net)

    def finish(
        self, ctx: Context, out: torch.Tensor, start: float, params: dict[str, Any] | None = None
    ) -> Explanation:
        """The pipeline's second half: what :meth:`compute` returned → the :class:`Explanation`
        (weighted sum, ReLU, upsampling, normalisation; ``start`` is the call's start time)."""
        with torch.no_grad():
            cam = self.combine(out, ctx.activations)
            heat = self.postprocess(cam, tuple(ctx.x.shape[-2:]))
        if not torch.isfinite(heat).all():
            raise RuntimeError(f"{type(self).__name__} produced a non-finite heatmap; please report this as a bug")
        flat = is_constant(heat)
        if bool(flat.any()) and ctx.activations.shape[-2:].numel() > 1:
            warnings.warn(
                f"{type(self).__name__}: a heatmap is constant (all zero): the method "
                "found no evidence for the target there (e.g. an all-zero image, or weights that are all ≤ 0)",
                UserWarning,
                stacklevel=3,
            )
        scores = ctx.logits.softmax(dim=1).gather(1, ctx.targets[:, None]).squeeze(1)
        extras = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in ctx.extras.items()}
        # intermediates that the method's explanation type declares become its fields; the rest stay in extras
        declared = {f.name for f in fields(self.explanation_type)} - {f.name for f in fields(Explanation)}
        typed = {k: extras.pop(k) for k in list(extras) if k in declared}
        return self.explanation_type(
            heatmaps=heat.float().cpu(),
            targets=ctx.targets.cpu(),
            scores=scores.cpu(),
            n_forward=ctx.n_forward,
            seconds=time.perf_counter() - start,
            method=self.name,
            layer=self.layer_name,
            params=self.params() if params is None else params,
            extras=extras,
            raw=cam.detach().float().cpu(),
            **typed,
        )

    @staticmethod
    def combine(out: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """Channel weights B×N → Σ_n w_n F_n (B×h×w); a spatial map passes through."""
        if out.dim() == 2:
            if out.shape[1] != acts.shape[1]:
                raise RuntimeError(f"{out.shape[1]} weights for {acts.shape[1]} channels")
            return torch.einsum("bn,bnhw->bhw", out.to(acts.dtype), acts)
        if out.dim() == 3:
            return out
        raise RuntimeError(f"compute() must return B×N weights or a B×h×w map, got shape {tuple(out.shape)}")

    def postprocess(self, cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """s(Up(ReLU(cam))): ReLU, bilinear upsampling to the input size, min-max normalisation."""
        return normalize_maps(upsample(cam.clamp_min(0), size))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
