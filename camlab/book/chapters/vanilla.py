"""Chapter 01, vanilla CAM (Zhou et al. 2016): eqs 1–2 checked by hand, the maps of two classes
of one photo on one colour scale, and the chapter's verdict.

>>> check = by_hand(clf, x)  # doctest: +SKIP
>>> pairs = class_pairs(clf, photos, {"both.png": ["bull mastiff", "tabby"]})  # doctest: +SKIP
>>> verdict(check, "../benchmarks/results", "efficientnet_lite0")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ...core.maps import common_scale, map_correlation, normalize_maps, upsample
from ...evaluation.harness import read_results
from ..plot import grid
from ..verdict import Verdict, exact_claim, largest_difference
from ..verdict import verdict as make_verdict

__all__ = ["HandCheck", "by_hand", "PairMaps", "class_pairs", "pair_figure", "verdict", "EXACT"]

EXACT = 1e-4  # float32 agreement asked of two computations of the same number (logits are O(10))
METRIC_ROUNDING = 1e-3  # what a CSV's rounding and a thresholded metric leave of a float difference


@dataclass(frozen=True)
class HandCheck:
    """Eqs 1–2 recomputed from the captured feature maps and the classifier's weights.

    ``eq2_gap``: the largest ``|mean_ij M_c(i,j) + b_c − S_c|`` over the images (the logit as the
    map's mean plus the bias); ``map_gap``: the largest difference between camlab's CAM heatmap and
    the by-hand one, after the shared post-processing; ``z_gap``: the largest difference between
    the post-processed map of ``M_c`` and of ``M_c / Z`` (the paper's sum against the network's
    average); ``shape``: one image's feature maps, N×h×w; ``n_images``: how many images."""

    eq2_gap: float
    map_gap: float
    z_gap: float
    shape: tuple[int, ...]
    n_images: int


def by_hand(clf: Any, x: torch.Tensor) -> HandCheck:
    """Check eqs 1–2 on the images ``x`` for each image's top-1 class at ``clf.target_layer``
    (which must feed global average pooling and one linear layer, as :class:`camlab.CAM` asks)."""
    from ...core.layers import capture
    from ...methods import CAM

    cam = CAM(clf, clf.target_layer)
    with torch.no_grad(), capture(clf.module, clf.target_layer) as cap:
        logits = clf.module(x)
    feats = cap.activations  # B×N×h×w
    top = logits.argmax(1)
    weight, bias = cam.fc.weight.detach(), cam.fc.bias.detach()
    maps = torch.einsum("bn,bnhw->bhw", weight[top], feats)  # eq 1, one map per image
    eq2 = (maps.mean((1, 2)) + bias[top] - logits[torch.arange(len(x)), top]).abs().max()
    size = tuple(x.shape[-2:])
    post = normalize_maps(upsample(maps.clamp_min(0), size))
    z = feats.shape[-1] * feats.shape[-2]
    post_z = normalize_maps(upsample((maps / z).clamp_min(0), size))
    camlab_maps = cam(x, targets=top.tolist()).heatmaps
    return HandCheck(
        eq2_gap=float(eq2),
        map_gap=float((post.cpu() - camlab_maps.cpu()).abs().max()),
        z_gap=float((post - post_z).abs().max()),
        shape=tuple(feats.shape[1:]),
        n_images=len(x),
    )


@dataclass(frozen=True)
class PairMaps:
    """Two classes of each multi-object photo: their CAMs on one colour scale per photo
    (``first``, ``second``: B×H×W, the larger peak of the two = 1), the Pearson r of the two raw
    maps, the second map's peak over the first's, and a caption per photo (class, probability,
    rank among the 1000 classes)."""

    names: list[str]
    x: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    correlation: list[float]
    peak_ratio: list[float]
    captions: list[str]
    rank: dict[tuple[str, str], int]


def class_pairs(
    clf: Any,
    photos: Mapping[str, Any],
    pairs: Mapping[str, Sequence[str]],
    also: Mapping[str, Sequence[str]] | None = None,
) -> PairMaps:
    """CAM of two classes per photo (``pairs[name]``: two class names of ``clf.categories``; a photo
    without a pair gets its top-2 classes), put on one scale by
    :func:`camlab.core.maps.common_scale`. ``rank[(name, class)]`` is the rank (1 = top) the model
    gives a class on a photo, for the two drawn and for those named in ``also[name]``.

    Raises:
        ValueError: a photo's pair does not name exactly two classes.
    """
    from ...methods import CAM

    names = list(photos)
    for n in names:
        if n in pairs and len(pairs[n]) != 2:
            raise ValueError(f"{n}: two classes to compare, got {list(pairs[n])}")
    x = clf.preprocess([photos[n] for n in names])
    with torch.no_grad():
        probs = clf.module(x).softmax(1)
    ranks = probs.argsort(1, descending=True).argsort(1) + 1
    chosen = [
        [clf.categories.index(c) for c in pairs[n]] if n in pairs else probs[i].topk(2).indices.tolist()
        for i, n in enumerate(names)
    ]
    cam = CAM(clf, clf.target_layer)
    a, b = (cam(x, targets=[c[k] for c in chosen]) for k in (0, 1))
    first, second = common_scale([a.raw, b.raw], tuple(x.shape[-2:]))
    r = map_correlation(a.raw, b.raw).tolist()
    ratio = [float(v.max()) / max(float(u.max()), 1e-12) for u, v in zip(first, second, strict=True)]
    rank = {(n, clf.categories[c]): int(ranks[i, c]) for i, n in enumerate(names) for c in chosen[i]}
    for i, n in enumerate(names):
        for c in (also or {}).get(n, ()):
            rank[(n, c)] = int(ranks[i, clf.categories.index(c)])

    def caption(i: int, c: int) -> str:
        return f"{clf.categories[c]} (p = {float(probs[i, c]):.2f}, rank {int(ranks[i, c])})"

    captions = ["\n".join([n] + [caption(i, c) for c in chosen[i]]) for i, n in enumerate(names)]
    return PairMaps(names, x, first, second, r, ratio, captions, rank)


def pair_figure(clf: Any, pm: PairMaps):
    """One row per photo: the photo (captioned with its two classes), then each class's CAM on the
    photo's common scale."""
    return grid(
        clf.unnormalize(pm.x),
        {"first class": pm.first, "second class": pm.second},
        row_titles=pm.captions,
        size=2.8,
        colorbar_label="CAM, one scale per photo (the larger peak = 1)",
    )


def verdict(check: HandCheck, committed: str | Path | None, model: str) -> Verdict:
    """The chapter's verdict: eq 2 (the logit is the map's mean plus the bias), eq 1 by hand,
    the 1/Z that the paper's eq 2 leaves out, and — from the committed Table 1 run
    (``<committed>/table1v2_<model>.csv``, when there is one) — CAM equal to Grad-CAM at the
    layer that feeds global average pooling, on every metric of every image."""
    n = check.n_images
    claims = [
        exact_claim(
            "eq 2",
            "eq 2 as the network computes it: the logit is the mean of M_c plus the bias b_c (largest |difference|)",
            check.eq2_gap,
            check.eq2_gap <= EXACT,
            n=n,
        ),
        exact_claim(
            "eq 1",
            "camlab's CAM is eq 1 computed by hand (largest |difference| of the heatmaps)",
            check.map_gap,
            check.map_gap <= EXACT,
            n=n,
        ),
        exact_claim(
            "1/Z",
            "the 1/Z of global average pooling leaves the normalised map unchanged (largest |difference|)",
            check.z_gap,
            check.z_gap <= EXACT,
            n=n,
        ),
    ]
    notes = [
        (
            f"On these {n} images the logit equals the mean of M_c plus the bias to within {check.eq2_gap:.1e} "
            f"(eq 2 with the network's 1/Z and bias), and camlab's map is eq 1 to within {check.map_gap:.1e}: "
            "both reproduced.",
            {"eq 2": "reproduced", "eq 1": "reproduced"},
        ),
        (
            f"Dividing by Z = {check.shape[1] * check.shape[2]} moves no normalised map (reproduced).",
            {"1/Z": "reproduced"},
        ),
    ]
    path = Path(committed) / f"table1v2_{model}.csv" if committed else None
    if path is not None and path.is_file():
        rows = read_results(path)
        gap = largest_difference(rows, "cam", "gradcam")
        images = len({r["image"] for r in rows})
        claims.append(
            exact_claim(
                "CAM = Grad-CAM",
                "at the input of global average pooling CAM is Grad-CAM: largest difference on any metric "
                "of Table 1 (dev images)",
                gap,
                gap <= METRIC_ROUNDING,
                n=images,
            )
        )
        notes.append(
            (
                f"On the {images} dev images of Table 1, CAM and Grad-CAM differ by at most {gap:.1e} on any "
                "metric, so the claim that they are one method here is reproduced.",
                {"CAM = Grad-CAM": "reproduced"},
            )
        )
    return make_verdict(claims, notes)
