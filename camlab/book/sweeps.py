"""Parameter sweeps for Cluster-CAM, with every metric, reusing what a parameter does not change.

:func:`sweep` runs Cluster-CAM over a grid of one parameter (α, the coupling, Q, K, the
clustering method or K-means' restarts) on a batch of images and measures each setting with the
metrics of :mod:`camlab.metrics`; :func:`compare` measures whole settings side by side. Both fit
each input once (one forward pass) and fit that state again for each clustering, so a setting
pays only for clusters never scored before: settings that differ only in α or the coupling cost
nothing after the first (:class:`~camlab.methods.cluster.ClusterRuns`, re-exported here).
:func:`seed_stability` says how much a setting's maps depend on the seed,
:func:`base_scissors_swaps` whether two classes of one image swap base and scissors (the paper's
Fig. 3). The rule that chose camlab's defaults from such rows is not here: it is a one-off
protocol, ``benchmarks/defaults_rule.py``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..core.explanation import Explanation
from ..methods.cluster import ClusterRuns

__all__ = ["ClusterRuns", "base_scissors_swaps", "sweep", "compare", "seed_stability", "SWEEPABLE"]

SWEEPABLE = ("alpha", "coupling", "n_clusters", "n_eigvecs", "clustering", "n_init")

Pointing = tuple[torch.Tensor, torch.Tensor, Sequence[tuple[int, int, int, int]]]


def sweep(
    module: nn.Module,
    x: torch.Tensor,
    layer: str,
    parameter: str,
    values: Sequence[Any],
    n_steps: int = 8,
    base: dict[str, Any] | None = None,
    pointing: Pointing | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Cluster-CAM on ``x`` for each value of ``parameter`` (one of :data:`SWEEPABLE`), other
    parameters from ``base``; one row per setting and image, with every metric and the forward
    passes per image the setting costs on its own (1 + Q).

    ``pointing = (composites, targets, boxes)`` adds the grid pointing game: the mean share of
    each composite map's mass inside its target's tile, reported on every row of that setting
    as ``pointing``. Each input is passed through the model once; a value that does not change
    the clusters (α, the coupling) costs no forward pass at all.
    """
    if parameter not in SWEEPABLE:
        raise ValueError(f"cannot sweep {parameter!r}; use one of {', '.join(SWEEPABLE)}")
    base = dict(base or {})
    return compare(
        module,
        x,
        layer,
        {value: {**base, parameter: value} for value in values},
        n_steps,
        pointing,
        progress,
        parameter=parameter,
    )


def compare(
    module: nn.Module,
    x: torch.Tensor,
    layer: str,
    settings: Mapping[Any, dict[str, Any]],
    n_steps: int = 8,
    pointing: Pointing | None = None,
    progress: bool = True,
    parameter: str = "setting",
) -> list[dict[str, Any]]:
    """Cluster-CAM on ``x`` for each named setting (a dict of ClusterCAM keyword arguments): the
    joint check of settings that a one-knob-at-a-time sweep cannot make. The settings share one
    forward pass per input and every cluster score (:class:`ClusterRuns`).

    Rows are the evaluation harness's (:func:`camlab.evaluation.harness.explanation_rows`: one per image,
    every metric) with ``parameter`` and ``value`` (the setting's name) added, and
    ``n_forward`` the passes per image the setting costs on its own (1 + Q). With ``pointing``
    (from :func:`camlab.evaluation.harness.pointing_tiles`: the tiles the model recognises), one more row
    per setting and tile holds that tile's ``pointing`` score (the share of the map's mass inside
    the tile)."""
    from .ablation_curves import measure_settings

    _, run = measure_settings(
        module, layer, x, settings, metrics=None, n_steps=n_steps, pointing=pointing, progress=progress
    )
    rows = []
    for name in settings:
        label = {"parameter": parameter, "value": name}
        mine = [{**label, **r} for r in run.rows if r["method"] == str(name)]
        cost = mine[0]["n_forward"]
        rows += mine + [
            {**label, "tile": int(t["image"]), "pointing": t["pointing"], "n_forward": cost}
            for t in run.tiles
            if t["method"] == str(name)
        ]
    return rows


def seed_stability(
    module: nn.Module, x: torch.Tensor, layer: str, seeds: Sequence[int] = range(5), **setting: Any
) -> dict[str, float]:
    """How much Cluster-CAM on ``x`` depends on its seed, for one setting (ClusterCAM keyword
    arguments). Over every pair of seeds and image: the mean adjusted Rand index of the two
    clusterings (``ari``) and the mean and lowest correlation of the two heatmaps (``corr``,
    ``corr_min``; pairs with a constant map are left out). Against the first seed: the share of
    the other seeds whose base and scissors are exactly the same set of channels
    (``same_base``, ``same_scissors``). One forward pass of ``x`` serves every seed."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"seed stability needs at least 2 seeds, got {seeds}")
    shared = ClusterRuns(module, layer, x)
    runs = [shared.explain({**setting, "seed": s}) for s in seeds]

    def members(exp: Explanation, i: int, which: torch.Tensor) -> set[int]:
        return set((exp.labels[i] == which[i]).nonzero().flatten().tolist())

    aris, corr, same_base, same_scissors = [], [], [], []
    for i in range(x.shape[0]):
        for a in range(len(runs)):
            for b in range(a + 1, len(runs)):
                aris.append(adjusted_rand_score(runs[a].labels[i].numpy(), runs[b].labels[i].numpy()))
                ha, hb = runs[a].heatmaps[i].flatten().double(), runs[b].heatmaps[i].flatten().double()
                if ha.std() > 0 and hb.std() > 0:
                    corr.append(float(torch.corrcoef(torch.stack([ha, hb]))[0, 1]))
        for r in runs[1:]:
            same_base.append(members(r, i, r.base) == members(runs[0], i, runs[0].base))
            same_scissors.append(members(r, i, r.scissors) == members(runs[0], i, runs[0].scissors))
    nan = float("nan")
    return {
        "ari": float(np.mean(aris)),
        "same_base": float(np.mean(same_base)),
        "same_scissors": float(np.mean(same_scissors)),
        "corr": float(np.mean(corr)) if corr else nan,
        "corr_min": float(np.min(corr)) if corr else nan,
    }


def base_scissors_swaps(
    module: nn.Module, layer: str, x: torch.Tensor, class_a: int, class_b: int, **setting: Any
) -> dict[str, bool]:
    """The paper's Fig. 3 claim on one two-object image ``x`` (1×3×H×W): explained for class
    ``a`` and for class ``b`` with the same clusters (one fit, the same seed), is the base of one
    the scissors of the other? ``swapped``: both ways (the paper's "interchanged"); ``half``:
    at least one way; ``same_base``: both classes keep the same base cluster."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"one image at a time: x must be 1×3×H×W, got {tuple(x.shape)}")
    exp = ClusterRuns(module, layer, x.expand(2, -1, -1, -1), [int(class_a), int(class_b)]).explain(setting)
    if not torch.equal(exp.labels[0], exp.labels[1]):  # same maps, same seed: the same clusters
        raise RuntimeError("the two explanations of one image clustered differently")
    base, scissors = exp.base.tolist(), exp.scissors.tolist()
    one, other = base[0] == scissors[1], base[1] == scissors[0]
    return {"swapped": one and other, "half": one or other, "same_base": base[0] == base[1]}
