"""Perturbation CAMs: Ablation-CAM (Desai & Ramaswamy, WACV 2020), Score-CAM (Wang et al., CVPRW
2020) — restated by Feng et al. 2023, eq 7 and eq 8–9 — and Group-CAM (Zhang et al. 2021).

They weigh channels (or groups of channels) by how the target score changes when the input is
masked, or the channel removed. Their cost is forward passes, so they batch them
(``batch_size`` images per pass), build masked inputs one chunk at a time, stay in torch on the
model's device, and skip passes whose result is known exactly in advance.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..core.maps import is_constant, normalize_maps, upsample
from ..core.masking import (
    Baseline,
    check_baseline,
    check_score,
    make_baseline,
    score_batch,
    score_masked,
    target_scores,
)
from ..core.split import tail_after
from .base import BaseCAM, Context

__all__ = ["ScoreCAM", "AblationCAM", "GroupCAM"]

_WEIGHTINGS = ("paper", "softmax", "softmax_delta")


class ScoreCAM(BaseCAM):
    """Score-CAM (Wang et al., CVPRW 2020; Feng et al. 2023, eq 8–9): each channel weighted by
    the score of the input masked with its upsampled, scaled map,

        H_n = s(Up(F_n)),    w_n = S_c(X ⊙ H_n) − S_c(X_b),    L = ReLU(Σ_n w_n F_n),

    ``X ⊙ H_n`` meaning ``X ⊙ H_n + X_b ⊙ (1 − H_n)`` (:mod:`camlab.masking`), ``S_c`` the softmax
    probability. One masked pass per channel.

    Args:
        score: ``"softmax"`` (probability, default) or ``"logit"``.
        baseline: what masked-out pixels become and what is subtracted: ``"zeros"`` (the default,
            the dataset mean in normalised space) or ``"blur"``; ``None`` masks with zeros and
            subtracts nothing (``w_n = S_c(X ⊙ H_n)``).
        weighting: ``"paper"`` (eq 8, default); ``"softmax"``: a softmax over channels of
            ``S_c(X ⊙ H_n)`` (pytorch-grad-cam's ``ScoreCAM``, with ``score="logit"``,
            ``baseline=None``); ``"softmax_delta"``: a softmax over channels of
            ``S_c(X ⊙ H_n) − S_c(X)`` (torchcam's ``ScoreCAM``, same options).
        align_corners: the convention of the bilinear upsampling of the masks. ``False``
            (half-pixel centres, the default and torchcam's); ``True`` is pytorch-grad-cam's.
            Under a softmax weighting this choice alone moves the map a lot (the logits of
            masked inputs differ by ~1, and the softmax turns that into large weight changes).

    A channel whose map is constant gives a zero mask, so its masked input *is* the all-masked
    input: it is scored once per image, not once per channel (under eq 8 its weight is exactly 0).
    ``n_forward`` counts the clean pass, the all-masked pass and one pass per non-constant channel.

    Examples:
        >>> cam = camlab.methods.ScoreCAM(clf, "blocks.0")  # 16 channels: quick (bn2 has 1280)
        >>> exp = cam(x)
        >>> exp.extras["channel_scores"].shape, exp.heatmaps.shape  # S_c(X ⊙ H_n) per channel
        (torch.Size([1, 16]), torch.Size([1, 224, 224]))
    """

    name = "scorecam"

    def __init__(
        self,
        module: nn.Module,
        target_layer,
        score: str = "softmax",
        baseline: Baseline = "zeros",
        weighting: str = "paper",
        align_corners: bool = False,
        batch_size: int | None = None,
    ):
        super().__init__(module, target_layer, batch_size=batch_size)
        self.score = check_score(score)
        self.align_corners = bool(align_corners)
        if weighting not in _WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; use one of {_WEIGHTINGS}")
        self.weighting = weighting
        self.baseline = check_baseline(baseline)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "score": self.score,
            "baseline": self.baseline,
            "weighting": self.weighting,
            "align_corners": self.align_corners,
        }

    def compute(self, ctx: Context) -> torch.Tensor:
        x, acts, t = ctx.x, ctx.activations, ctx.targets
        b, n = acts.shape[:2]
        fill = self.baseline if self.baseline is not None else "zeros"
        bases = make_baseline(x, fill)
        base_scores = score_batch(self.net, bases, t, self.score)  # S_c(X_b), one pass per image
        live = ~is_constant(acts)  # B×N
        owner, channel = live.nonzero(as_tuple=True)
        scores = base_scores[:, None].repeat(1, n)  # a constant channel's masked input is X_b
        if owner.numel():
            scores[owner, channel] = score_masked(
                self.net,
                x,
                acts[owner, channel],
                owner,
                t,
                score=self.score,
                batch_size=self.batch_size,
                bases=bases,
                align_corners=self.align_corners,
            )
        ctx.extras["channel_scores"] = scores
        if self.weighting == "softmax":
            return scores.softmax(dim=1)
        if self.weighting == "softmax_delta":
            return (scores - target_scores(ctx.logits, t, self.score)[:, None]).softmax(dim=1)
        if self.baseline is None:
            return scores
        return scores - base_scores[:, None]


class AblationCAM(BaseCAM):
    """Ablation-CAM (Desai & Ramaswamy, WACV 2020; Feng et al. 2023, eq 7): each channel weighted
    by the relative score lost when it is zeroed,

        w_n = (S_c − S_{c,n}) / S_c,    L = ReLU(Σ_n w_n F_n),

    ``S_{c,n}`` the score with channel ``n`` of the target layer set to zero (0 when S_c = 0).

    The activations are computed once; each ablated copy goes only through the part of the
    network after the target layer (split with ``torch.fx``, :func:`camlab.core.split.tail_after`).
    A network that cannot be split falls back, with a warning, to full forward passes with the
    layer's output replaced. A channel that is already all zero cannot change the score when
    zeroed: its weight is exactly 0 and it is not run. ``n_forward`` counts every ablated copy
    (each a partial pass through the tail) plus the clean pass.

    Args:
        score: ``"softmax"`` (default) or ``"logit"`` (pytorch-grad-cam's ``AblationCAM`` uses
            logits and, for layers whose minimum is 0, zeroes the channel — the same definition).
        split: ``False`` forces full forward passes (for checking the split).

    Examples:
        >>> cam = camlab.methods.AblationCAM(clf, clf.target_layer)  # its tail: pooling + linear
        >>> exp = cam(x)
        >>> exp.extras["ablated_scores"].shape  # S_{c,n}, one per channel of bn2
        torch.Size([1, 1280])
    """

    name = "ablationcam"

    def __init__(
        self, module: nn.Module, target_layer, score: str = "softmax", batch_size: int = 64, split: bool = True
    ):
        super().__init__(module, target_layer, batch_size=batch_size)
        self.score = check_score(score)
        self.split = bool(split)
        self._tail: nn.Module | None = None
        self._tail_checked = False

    def params(self) -> dict[str, Any]:
        return {**super().params(), "score": self.score, "split": self.split}

    def _get_tail(self, acts: torch.Tensor, logits: torch.Tensor) -> nn.Module | None:
        if not self.split:
            return None
        if not self._tail_checked:
            self._tail_checked = True
            tail = tail_after(self.net, self.layer_name)
            ok = False
            if tail is not None:
                try:
                    out = tail(acts)
                    ok = (
                        isinstance(out, torch.Tensor)
                        and out.shape == logits.shape
                        and torch.allclose(out, logits, rtol=1e-4, atol=1e-4)
                    )
                except Exception:
                    ok = False
            if ok:
                self._tail = tail
            else:
                warnings.warn(
                    f"cannot split {type(self.module).__name__} after {self.layer_name!r}; Ablation-CAM falls back to "
                    "full forward passes (slower, same result)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return self._tail

    def _ablated_logits(self, x: torch.Tensor, ablated: torch.Tensor, tail: nn.Module | None) -> torch.Tensor:
        if tail is not None:
            return tail(ablated)
        handle = self.net.get_submodule(self.layer_name).register_forward_hook(lambda m, i, o: ablated)
        try:
            return self.net(x.expand(ablated.shape[0], *x.shape[1:]))
        finally:
            handle.remove()

    def compute(self, ctx: Context) -> torch.Tensor:
        acts, t = ctx.activations, ctx.targets
        b, n = acts.shape[:2]
        tail = self._get_tail(acts, ctx.logits)
        if tail is not None and ctx.forwards is not None:
            ctx.forwards.watch(tail)  # each ablated copy is a (partial) pass: counted
        clean = target_scores(ctx.logits, t, self.score)
        ablated_scores = clean[:, None].repeat(1, n)  # an all-zero channel is unchanged by zeroing it
        live = acts.flatten(2).ne(0).any(dim=2)
        for i in range(b):
            channels = live[i].nonzero().flatten()
            for start in range(0, channels.numel(), self.batch_size):
                chunk = channels[start : start + self.batch_size]
                copies = acts[i : i + 1].repeat(chunk.numel(), 1, 1, 1)
                copies[torch.arange(chunk.numel(), device=acts.device), chunk] = 0
                with torch.inference_mode():  # the tail passes need no gradient
                    logits = self._ablated_logits(ctx.x[i : i + 1], copies, tail)
                    chunk_scores = target_scores(logits, t[i].expand(chunk.numel()), self.score)
                ablated_scores[i, chunk] = chunk_scores
        ctx.extras["ablated_scores"] = ablated_scores
        # of n_forward, how many were partial passes through the tail only (a timing table counts them apart)
        ctx.extras["tail_passes"] = int(live.sum()) if tail is not None else 0
        delta = clean[:, None] - ablated_scores
        return torch.where(
            clean[:, None] != 0, delta / torch.where(clean[:, None] != 0, clean[:, None], 1.0), torch.zeros_like(delta)
        )


class GroupCAM(BaseCAM):
    """Group-CAM (Zhang, Rao & Yang, arXiv 2021): score-weighted groups of gradient-weighted
    channels. The channels are split into ``n_groups`` contiguous groups G_g, and

        M_g = s(Up(ReLU(Σ_{n ∈ G_g} ḡ_n F_n))),    ḡ_n the Grad-CAM weight,
        w_g = S_c(X ⊙ M_g + blur(X) ⊙ (1 − M_g)) − S_c(blur(X)),    heatmap = s(ReLU(Σ_g w_g M_g)).

    The official code's optional 70th-percentile thresholding of each group map is left out. A
    constant group map masks nothing in and has weight exactly 0: it is skipped. Cost: one
    forward and backward, one blurred pass, one pass per non-constant group.

    Examples:
        >>> exp = camlab.methods.GroupCAM(clf, "blocks.6", n_groups=4)(x)  # default 32 groups
        >>> exp.extras["group_scores"].shape, exp.heatmaps.shape  # w_g per group
        (torch.Size([1, 4]), torch.Size([1, 224, 224]))
    """

    name = "groupcam"
    needs_gradients = True

    def __init__(
        self,
        module: nn.Module,
        target_layer,
        n_groups: int = 32,
        score: str = "softmax",
        baseline: Baseline = "blur",
        batch_size: int | None = None,
    ):
        super().__init__(module, target_layer, batch_size=batch_size)
        if int(n_groups) < 1:
            raise ValueError(f"n_groups must be ≥ 1, got {n_groups}")
        self.n_groups = int(n_groups)
        self.score = check_score(score)
        self.baseline = check_baseline(baseline)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "n_groups": self.n_groups, "score": self.score, "baseline": self.baseline}

    def compute(self, ctx: Context) -> torch.Tensor:
        x, acts, t = ctx.x, ctx.activations, ctx.targets
        b, n = acts.shape[:2]
        if self.n_groups > n:
            raise ValueError(f"n_groups={self.n_groups} is larger than the {n} channels of layer {self.layer_name!r}")
        weighted = ctx.gradients.mean(dim=(2, 3), keepdim=True) * acts
        groups = torch.stack([g.sum(dim=1) for g in weighted.tensor_split(self.n_groups, dim=1)], dim=1)  # B×G×h×w
        masks = normalize_maps(upsample(groups.clamp_min(0), tuple(x.shape[-2:])))  # B×G×H×W
        bases = make_baseline(x, self.baseline)
        base_scores = score_batch(self.net, bases, t, self.score)
        live = ~is_constant(masks)
        owner, group = live.nonzero(as_tuple=True)
        weights = torch.zeros(b, self.n_groups, device=x.device, dtype=x.dtype)
        if owner.numel():
            s = score_masked(
                self.net,
                x,
                masks[owner, group],
                owner,
                t,
                score=self.score,
                batch_size=self.batch_size,
                normalize=False,
                bases=bases,
            )
            weights[owner, group] = s - base_scores[owner]
        ctx.extras["group_scores"] = weights
        return torch.einsum("bg,bghw->bhw", weights, masks)
