"""Evaluation metrics, batched, in torch on the model's device.

Every masking metric masks through :func:`camlab.masking.apply_masks` — the same function the
methods use — on the normalised input, and scores with softmax probabilities. The model is a
:class:`~camlab.Classifier` (scored through its folded twin, ``Classifier.scorer``) or an
``nn.Module`` (run as it is).

- :func:`confidence_drop` and :func:`increase` — the explanation input is ``E = X ⊙ H``;
  ``Y = S_c(X)``, ``O = S_c(E)``. ``drop = max(0, Y − O) / Y`` is Chattopadhay et al. (WACV
  2018)'s Average Drop; ``drop_unclipped = (Y − O) / Y`` is Feng et al. (2023)'s eq 23 as
  printed, without the max(0, ·) (the paper does not say whether it clips, so tables show both);
  ``increase = [O > Y]`` is Chattopadhay et al.'s Increase in Confidence (Feng et al.'s
  "increase number", Table 1).
- ``gain`` — Average Gain (Zhang et al. 2023, Opti-CAM): ``max(0, O − Y) / (1 − Y)``, the
  counterpart of the drop, which rewards only losses.
- Equal area (``drop_top10``, ``increase_top20``, ``gain_top50``, …): the same three on the map
  binarised to its top 10 %, 20 % or 50 % of pixels (:func:`top_fraction`), so every method keeps
  the same area and a map cannot win by covering more.
- :func:`deletion` and :func:`insertion` — Petsiuk et al. (BMVC 2018, RISE): pixels in order of
  heatmap value, removed towards the baseline or inserted into a blurred image, in ``n_steps``
  steps; the area under the score curve over the fraction of pixels, ``∫₀¹ S_c(X_p) dp``.
- :func:`road` — ROAD (Rong et al., ICML 2022): remove 10 %, 20 %, …, 90 % of the pixels, most
  relevant first (``road_morf``, lower is better) or least relevant first (``road_lerf``, higher
  is better), and *impute* them (:func:`noisy_linear_impute`) instead of blacking them out, so
  the removed region does not itself tell the model something; ``road = (road_lerf −
  road_morf) / 2``, higher is better.
- :func:`grid_pointing` — tiles of known classes in one composite image (the grid pointing game
  of Böhle et al., CVPR 2021): the share of the heatmap's positive mass inside the target's
  tile, and whether its maximum lies there (the pointing game of Zhang et al., ECCV 2016).
- :func:`coverage` — the mean heatmap value, to see when a metric rewards maps that keep most
  of the image.

Every pixel ordering (deletion, insertion, ROAD, equal area) breaks ties in the heatmap at random
with a seed (:func:`pixel_ranks`): a map with many exactly-equal values (Cluster-CAM's are about a
fifth zeros) would otherwise be ordered in raster order, top rows first.

:func:`measure` computes any of them at once per image (the drops, increases and gains share
their passes).

The examples use a model and one preprocessed image::

    clf = camlab.load_model("efficientnet_lite0")
    x = clf.preprocess(["image.jpg"])  # 1×3×224×224
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..core.device import default_batch_size, module_memory_format, to_model_format
from ..core.masking import Baseline, make_baseline, score_batch, score_masked
from ..core.models import Classifier
from .imputation import noisy_linear_impute

__all__ = [
    "METRICS",
    "measure",
    "check_metrics",
    "confidence_drop",
    "increase",
    "confidence_summary",
    "average_gain",
    "top_fraction",
    "pixel_ranks",
    "noisy_linear_impute",
    "road",
    "Road",
    "Curves",
    "deletion",
    "insertion",
    "coverage",
    "grid_pointing",
    "PointingResult",
    "HIGHER_IS_BETTER",
    "AREAS",
    "ROAD_FRACTIONS",
]

AREAS = (10, 20, 50)  # the equal-area comparison: the map's top 10 %, 20 %, 50 % of pixels
EQUAL_AREA = tuple(f"{m}_top{a}" for a in AREAS for m in ("drop", "increase", "gain"))
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
METRICS = (
    "drop",
    "drop_unclipped",
    "increase",
    "gain",
    "insertion",
    "deletion",
    "road_morf",
    "road_lerf",
    "road",
    *EQUAL_AREA,
    "coverage",
)
# which way each metric is better (coverage has no better direction and is left out)
HIGHER_IS_BETTER = {
    "drop": False,
    "drop_unclipped": False,
    "increase": True,
    "gain": True,
    "insertion": True,
    "deletion": False,
    "road_morf": False,
    "road_lerf": True,
    "road": True,
    "pointing": True,
    **{f"{m}_top{a}": m != "drop" for a in AREAS for m in ("drop", "increase", "gain")},
}


def _network(model: nn.Module | Classifier) -> nn.Module:
    """The network to score with: a Classifier's :attr:`~camlab.Classifier.scorer` (its folded
    twin), or the module itself."""
    return model.scorer if isinstance(model, Classifier) else model


def _prepare(
    module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = to_model_format(x, module)
    dev = x.device
    h = torch.as_tensor(heatmaps).to(dev, x.dtype)
    if h.dim() == 2:
        h = h[None]
    if h.shape[0] != x.shape[0] or tuple(h.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(f"heatmaps {tuple(h.shape)} do not match the batch {tuple(x.shape)}: one H×W map per image")
    if torch.isnan(h).any() or h.min() < 0 or h.max() > 1:
        raise ValueError("heatmaps must lie in [0, 1] (as every camlab method returns them)")
    t = torch.as_tensor(targets, dtype=torch.long).flatten().to(dev)
    if t.numel() == 1 and x.shape[0] > 1:
        t = t.expand(x.shape[0])
    if t.numel() != x.shape[0]:
        raise ValueError(f"{t.numel()} targets for a batch of {x.shape[0]} images")
    return x, h, t


def _clean_and_explained(
    module, x, heatmaps, targets, baseline: Baseline = "zeros"
) -> tuple[torch.Tensor, torch.Tensor]:
    module = _network(module)
    x, h, t = _prepare(module, x, heatmaps, targets)
    y = score_batch(module, x, t)
    owner = torch.arange(x.shape[0], device=x.device)
    o = score_masked(
        module, x, h, owner, t, baseline=baseline, normalize=False, batch_size=default_batch_size(x.device)
    )
    return y, o


def confidence_drop(
    module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, clip: bool = True, baseline: Baseline = "zeros"
) -> torch.Tensor:
    """Per-image relative drop of the target's probability when the image is masked by its map,

        drop = max(0, Y − O) / Y    (clip=True: Chattopadhay et al., WACV 2018, Average Drop),
        drop = (Y − O) / Y          (clip=False: Feng et al. 2023, eq 23 as printed),

    with ``Y = S_c(X)``, ``O = S_c(X ⊙ H + X_b ⊙ (1 − H))`` (``baseline`` X_b). Lower is better;
    ``100 · mean`` is the papers' "average drop" / "confidence drop". A constant zero heatmap
    masks everything: O is the score of the baseline input.

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> drop = camlab.metrics.confidence_drop(clf, x, exp.heatmaps, exp.targets)
        >>> drop.shape, 0 <= float(drop) <= 1
        (torch.Size([1]), True)
    """
    y, o = _clean_and_explained(module, x, heatmaps, targets, baseline)
    return _drop(y, o, clip)


def _drop(y: torch.Tensor, o: torch.Tensor, clip: bool = True) -> torch.Tensor:
    drop = (y - o) / y
    return drop.clamp_min(0) if clip else drop


def increase(
    module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, baseline: Baseline = "zeros"
) -> torch.Tensor:
    """Per-image bool ``O > Y``: is the target's probability strictly higher on the explanation
    input ``X ⊙ H`` than on the image? ``100 · mean`` is Chattopadhay et al. (WACV 2018)'s
    "Increase in Confidence", Feng et al. (2023)'s "increase number" (Table 1); higher is better.

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> inc = camlab.metrics.increase(clf, x, exp.heatmaps, exp.targets)
        >>> inc.dtype, inc.shape
        (torch.bool, torch.Size([1]))
    """
    y, o = _clean_and_explained(module, x, heatmaps, targets, baseline)
    return o > y


def check_metrics(names: Sequence[str]) -> list[str]:
    """The metric names, or a ValueError naming the first unknown one and those available.

    Examples:
        >>> camlab.metrics.check_metrics(["drop", "road"])
        ['drop', 'road']
        >>> camlab.metrics.check_metrics(["dorp"])
        Traceback (most recent call last):
        ValueError: unknown metric 'dorp'; available: drop, drop_unclipped, increase, ...
    """
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric {bad[0]!r}; available: {', '.join(METRICS)}")
    return list(names)


def measure(
    module: nn.Module,
    x: torch.Tensor,
    heatmaps: torch.Tensor,
    targets,
    metrics: Sequence[str] = METRICS,
    n_steps: int = 32,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per-image values (B,) of each named metric of :data:`METRICS`, on the CPU, in the order of
    :data:`METRICS`: confidence drop (clipped and unclipped), increase (bool), gain, insertion and
    deletion areas with ``n_steps`` steps, ROAD, the equal-area drop, increase and gain, coverage.
    The drops, increases and gains share one clean and one explained pass (and one pass per
    area); ``seed`` breaks ties in the pixel order and draws ROAD's noise, so reruns are identical.
    With Y = S_c(X), O = S_c(X ⊙ H) (softmax probabilities):

        drop = max(0, Y − O) / Y, drop_unclipped = (Y − O) / Y   Chattopadhay et al. 2018; Feng et al. 2023, eq 23
        increase = [O > Y]                                       Chattopadhay et al., WACV 2018
        gain = max(0, O − Y) / (1 − Y)                           Zhang et al. 2023 (Opti-CAM)
        insertion, deletion = ∫₀¹ S_c(X_p) dp                    Petsiuk et al., BMVC 2018
        road_morf, road_lerf = mean_p S_c(impute(X, p))          Rong et al., ICML 2022
        road = (road_lerf − road_morf) / 2
        drop_topNN, increase_topNN, gain_topNN: the same with H = top_fraction(H, NN %)
        coverage = mean_ij H(i, j)

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> values = camlab.metrics.measure(clf, x, exp.heatmaps, exp.targets, ["gain", "drop", "drop_top20"])
        >>> list(values), values["drop"].shape  # in the order of METRICS
        (['drop', 'gain', 'drop_top20'], torch.Size([1]))
    """
    metrics = check_metrics(metrics)
    module = _network(module)
    want = set(metrics)
    out: dict[str, torch.Tensor] = {}
    if want & {"drop", "drop_unclipped", "increase", "gain", *EQUAL_AREA}:
        x_, h, t = _prepare(module, x, heatmaps, targets)
        y = score_batch(module, x_, t)
        owner = torch.arange(x_.shape[0], device=x_.device)
        bs = default_batch_size(x_.device)
        explained = {"": h}
        if want & set(EQUAL_AREA):
            for a in AREAS:
                explained[f"_top{a}"] = top_fraction(h, a / 100, seed)
        for suffix, maps in explained.items():
            if not want & {f"drop{suffix}", f"increase{suffix}", f"gain{suffix}", f"drop_unclipped{suffix}"}:
                continue
            o = score_masked(module, x_, maps, owner, t, normalize=False, batch_size=bs)
            values = {
                "drop": _drop(y, o),
                "drop_unclipped": _drop(y, o, clip=False),
                "increase": o > y,
                "gain": _gain(y, o),
            }
            out.update({f"{k}{suffix}": v.cpu() for k, v in values.items() if f"{k}{suffix}" in want})
    if "insertion" in want:
        out["insertion"] = insertion(module, x, heatmaps, targets, n_steps=n_steps, seed=seed).auc
    if "deletion" in want:
        out["deletion"] = deletion(module, x, heatmaps, targets, n_steps=n_steps, seed=seed).auc
    if want & {"road", "road_morf", "road_lerf"}:
        r = road(module, x, heatmaps, targets, seed=seed)
        out.update(
            {k: v for k, v in (("road_morf", r.morf_mean), ("road_lerf", r.lerf_mean), ("road", r.score)) if k in want}
        )
    if "coverage" in want:
        out["coverage"] = coverage(heatmaps).cpu()
    return {m: out[m] for m in METRICS if m in out}


def _gain(y: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """Average Gain's per-image term ``max(0, O − Y) / (1 − Y)`` (0 when Y = 1: nothing to gain)."""
    room = 1 - y
    return torch.where(
        room > 0, (o - y).clamp_min(0) / torch.where(room > 0, room, torch.ones_like(room)), torch.zeros_like(y)
    )


def average_gain(
    module: nn.Module, x: torch.Tensor, heatmaps: torch.Tensor, targets, baseline: Baseline = "zeros"
) -> torch.Tensor:
    """Per-image Average Gain term (Zhang et al. 2023, Opti-CAM, eq 13),

        gain = max(0, O − Y) / (1 − Y)    (0 when Y = 1),

    with ``Y = S_c(X)``, ``O = S_c(X ⊙ H)``; higher is better, ``100 · mean`` is the paper's "AG".
    The counterpart of the clipped drop (:func:`confidence_drop`), which rewards only losses.

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> gain = camlab.metrics.average_gain(clf, x, exp.heatmaps, exp.targets)
        >>> gain.shape, 0 <= float(gain) <= 1
        (torch.Size([1]), True)
    """
    y, o = _clean_and_explained(module, x, heatmaps, targets, baseline)
    return _gain(y, o)


def pixel_ranks(heatmaps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """B×H×W heatmaps → B×(H·W) rank of every pixel, 0 for the most relevant (highest value).

    Equal values are ordered at random (a seeded permutation per image), never by position: a
    stable sort would remove tied pixels top row first.

    Examples:
        >>> camlab.metrics.pixel_ranks(torch.tensor([[[0.1, 0.9], [0.5, 0.3]]]))
        tensor([[3, 0, 1, 2]])
    """
    h = torch.as_tensor(heatmaps).flatten(1)
    b, n = h.shape
    gen = torch.Generator().manual_seed(int(seed))
    shuffle = torch.argsort(torch.rand(b, n, generator=gen), dim=1).to(h.device)
    order = shuffle.gather(1, torch.argsort(h.gather(1, shuffle), dim=1, descending=True, stable=True))
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=h.device).expand(b, n))
    return rank


def top_fraction(heatmaps: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """The map binarised to its top ``fraction`` of pixels (exactly ``round(fraction · H·W)`` ones
    per map, ties broken at random by :func:`pixel_ranks`), in the heatmaps' dtype: the map of
    the equal-area metrics ``drop_topNN``, ``increase_topNN``, ``gain_topNN`` (fraction NN %).

    Examples:
        >>> camlab.metrics.top_fraction(torch.tensor([[[0.1, 0.9], [0.5, 0.3]]]), 0.5)
        tensor([[[0., 1.],
                 [1., 0.]]])
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    h = torch.as_tensor(heatmaps)
    n = h.shape[-2] * h.shape[-1]
    return (
        (pixel_ranks(h, seed) < round(fraction * n))
        .to(h.dtype if h.is_floating_point() else torch.float32)
        .view(h.shape)
    )


def confidence_summary(
    drops: torch.Tensor | Sequence[float], increases: torch.Tensor | Sequence[bool]
) -> dict[str, float]:
    """Feng et al. (2023)'s Table 1 numbers, as percentages: ``100 · mean(drop)`` and
    ``100 · mean(increase)`` over the images.

    Examples:
        >>> camlab.metrics.confidence_summary([0.25, 0.75], [True, False])
        {'confidence_drop': 50.0, 'increase': 50.0, 'n_images': 2}
    """
    d = torch.as_tensor(drops, dtype=torch.float64)
    i = torch.as_tensor(increases, dtype=torch.float64)
    return {"confidence_drop": 100 * float(d.mean()), "increase": 100 * float(i.mean()), "n_images": int(d.numel())}


@dataclass
class Curves:
    """Score curves of deletion or insertion: ``scores`` B×(n_steps+1) at ``fractions``, and the areas."""

    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor


def _order_masks(h: torch.Tensor, n_steps: int, seed: int = 0) -> torch.Tensor:
    """B×(n_steps+1)×H×W binary masks: step k holds the top ``k/n_steps`` of the pixels by heatmap
    value (ties at random, :func:`pixel_ranks`)."""
    b, hh, ww = h.shape
    n = hh * ww
    rank = pixel_ranks(h, seed)
    counts = torch.round(torch.linspace(0, n, n_steps + 1, device=h.device)).long()
    return (rank[:, None, :] < counts[None, :, None]).to(h.dtype).view(b, n_steps + 1, hh, ww)


@torch.no_grad()
def _curves(module, x, heatmaps, targets, n_steps, mode, baseline, batch_size, seed=0) -> Curves:
    if n_steps < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}")
    module = _network(module)
    x, h, t = _prepare(module, x, heatmaps, targets)
    b = x.shape[0]
    steps = _order_masks(h, n_steps, seed)  # 1 where the pixel is among the top k
    if mode == "deletion":
        keep, bases = 1 - steps, make_baseline(x, baseline)
    else:
        keep, bases = steps, make_baseline(x, "blur")
    owner = torch.arange(b, device=x.device).repeat_interleave(n_steps + 1)
    scores = score_masked(
        module,
        x,
        keep.flatten(0, 1),
        owner,
        t,
        normalize=False,
        bases=bases,
        batch_size=batch_size or default_batch_size(x.device),
    )
    scores = scores.view(b, n_steps + 1)
    fractions = torch.linspace(0, 1, n_steps + 1, device=x.device, dtype=scores.dtype)
    return Curves(fractions.cpu(), scores.cpu(), torch.trapezoid(scores, fractions, dim=1).cpu())


def deletion(
    module: nn.Module,
    x: torch.Tensor,
    heatmaps: torch.Tensor,
    targets,
    n_steps: int = 32,
    baseline: Baseline = "zeros",
    batch_size: int | None = None,
    seed: int = 0,
) -> Curves:
    """Deletion (Petsiuk et al., BMVC 2018, RISE): remove pixels, most salient first (ties at
    random with ``seed``), towards the baseline X_b; lower area is better.

        X_p = X ⊙ (1 − T_p) + X_b ⊙ T_p,    auc = ∫₀¹ S_c(X_p) dp  (trapezoid, p = k / n_steps),

    T_p the top fraction p of the map's pixels (:func:`pixel_ranks`), S_c the softmax probability.

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> curves = camlab.metrics.deletion(clf, x, exp.heatmaps, exp.targets, n_steps=4)
        >>> curves.fractions, curves.scores.shape, curves.auc.shape
        (tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000]), torch.Size([1, 5]), torch.Size([1]))
    """
    return _curves(module, x, heatmaps, targets, n_steps, "deletion", baseline, batch_size, seed)


def insertion(
    module: nn.Module,
    x: torch.Tensor,
    heatmaps: torch.Tensor,
    targets,
    n_steps: int = 32,
    batch_size: int | None = None,
    seed: int = 0,
) -> Curves:
    """Insertion (Petsiuk et al., BMVC 2018, RISE): insert pixels, most salient first (ties at
    random with ``seed``), into a blurred copy of the image; higher area is better.

        X_p = X ⊙ T_p + blur(X) ⊙ (1 − T_p),    auc = ∫₀¹ S_c(X_p) dp  (trapezoid, p = k / n_steps),

    T_p the top fraction p of the map's pixels (:func:`pixel_ranks`), S_c the softmax probability.

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> curves = camlab.metrics.insertion(clf, x, exp.heatmaps, exp.targets, n_steps=4)
        >>> torch.allclose(curves.scores[:, -1], exp.scores, atol=1e-4)  # all inserted: the image's score
        True
    """
    return _curves(module, x, heatmaps, targets, n_steps, "insertion", "blur", batch_size, seed)


@dataclass
class Road:
    """ROAD's score curves: ``morf`` and ``lerf`` are B×F target probabilities after removing the
    ``fractions`` of pixels most (least) relevant first and imputing them."""

    fractions: torch.Tensor
    morf: torch.Tensor
    lerf: torch.Tensor

    @property
    def morf_mean(self) -> torch.Tensor:
        """``road_morf`` (B,): mean probability over the fractions, most relevant removed first; lower is better."""
        return self.morf.mean(1)

    @property
    def lerf_mean(self) -> torch.Tensor:
        """``road_lerf`` (B,): mean probability over the fractions, least relevant removed first; higher is better."""
        return self.lerf.mean(1)

    @property
    def score(self) -> torch.Tensor:
        """``road`` (B,) = (road_lerf − road_morf) / 2; higher is better."""
        return (self.lerf_mean - self.morf_mean) / 2


@torch.no_grad()
def road(
    module: nn.Module,
    x: torch.Tensor,
    heatmaps: torch.Tensor,
    targets,
    fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int | None = None,
) -> Road:
    """ROAD (Rong et al., ICML 2022): for each fraction p, remove the ``round(p·H·W)`` pixels with
    the highest heatmap values (MoRF) or the lowest (LeRF), ties at random (:func:`pixel_ranks`),
    impute them with :func:`noisy_linear_impute` (noise σ = ``noise``, drawn from ``seed``) and
    score the target's softmax probability. One imputation per image × fraction × order; the
    imputed images are scored ``batch_size`` at a time.

        road_morf = mean_p S_c(impute(X, MoRF_p)),    road_lerf = mean_p S_c(impute(X, LeRF_p)),
        road = (road_lerf − road_morf) / 2    (higher is better),

    the :class:`Road` result's ``morf_mean``, ``lerf_mean`` and ``score``.

    Examples:
        >>> exp = camlab.methods.GradCAM(clf, clf.target_layer)(x)
        >>> r = camlab.metrics.road(clf, x, exp.heatmaps, exp.targets, fractions=(0.2, 0.5))
        >>> r.morf.shape, r.score.shape  # one curve per image; road per image
        (torch.Size([1, 2]), torch.Size([1]))
    """
    module = _network(module)
    x, h, t = _prepare(module, x, heatmaps, targets)
    f = torch.as_tensor(list(fractions), dtype=torch.float64)
    if f.numel() == 0 or bool(((f <= 0) | (f >= 1)).any()):
        raise ValueError(f"ROAD's fractions must lie strictly between 0 and 1, got {list(fractions)}")
    b, n = x.shape[0], h.shape[-2] * h.shape[-1]
    counts = torch.round(f * n).long().to(h.device)
    rank = pixel_ranks(h, seed)  # B×n
    morf = rank[:, None, :] < counts[None, :, None]  # B×F×n: the top p removed
    lerf = rank[:, None, :] >= (n - counts)[None, :, None]  # the bottom p removed
    removed = torch.cat([morf, lerf], dim=1).view(b * 2 * len(f), *h.shape[-2:])
    owner = torch.arange(b, device=x.device).repeat_interleave(2 * len(f))
    gen = torch.Generator().manual_seed(int(seed))
    imputed = noisy_linear_impute(x[owner], removed, noise=noise, generator=gen).to(x.device, x.dtype)
    bs = batch_size or default_batch_size(x.device)
    layout = module_memory_format(module)
    scores = torch.cat(
        [
            score_batch(module, imputed[i : i + bs].contiguous(memory_format=layout), t[owner[i : i + bs]])
            for i in range(0, len(owner), bs)
        ]
    )
    scores = scores.view(b, 2, len(f)).cpu()
    return Road(f.to(scores.dtype), scores[:, 0], scores[:, 1])


def coverage(heatmaps: torch.Tensor) -> torch.Tensor:
    """Mean heatmap value per map (B,), ``coverage = 1/(H·W) Σ_ij H(i,j)``: the share of the
    image a map keeps, softly. No better direction: it shows when a metric rewards maps that keep
    most of the image.

    Examples:
        >>> camlab.metrics.coverage(torch.tensor([[[0.1, 0.9], [0.5, 0.3]]]))
        tensor([0.4500])
    """
    h = torch.as_tensor(heatmaps)
    return h.flatten(1).float().mean(1)


@dataclass
class PointingResult:
    """Grid pointing game for one composite and one target tile."""

    mass_inside: float  # share of the heatmap's positive mass inside the tile (1 = perfect)
    max_inside: bool  # whether the heatmap's maximum lies inside the tile


def grid_pointing(heatmap: torch.Tensor, box: tuple[int, int, int, int]) -> PointingResult:
    """Score one H×W heatmap against the tile ``box = (top, left, height, width)`` of its target
    in a grid of images of different classes (the grid pointing game, Böhle et al., CVPR 2021
    and 2022):

        mass_inside = Σ_{(i,j) ∈ box} H⁺(i,j) / Σ_ij H⁺(i,j)    (H⁺ = max(H, 0)),
        max_inside = argmax_ij H ∈ box    (a hit of the pointing game, Zhang et al., ECCV 2016).

    A heatmap with no positive mass scores 0 and misses.

    Examples:
        >>> heat = torch.zeros(224, 224); heat[10:50, 20:60] = 1.0  # all in the top-left tile of a 2×2 grid
        >>> camlab.metrics.grid_pointing(heat, (0, 0, 112, 112))
        PointingResult(mass_inside=1.0, max_inside=True)
        >>> camlab.metrics.grid_pointing(heat, (112, 0, 112, 112))
        PointingResult(mass_inside=0.0, max_inside=False)
    """
    h = torch.as_tensor(heatmap).float().clamp_min(0)
    top, left, height, width = box
    total = float(h.sum())
    inside = float(h[top : top + height, left : left + width].sum())
    flat = int(h.flatten().argmax())
    r, c = divmod(flat, h.shape[1])
    hit = total > 0 and top <= r < top + height and left <= c < left + width
    return PointingResult(inside / total if total > 0 else 0.0, bool(hit))
