"""Parameter sweeps for Cluster-CAM, with every metric, reusing what a parameter does not change.

:func:`recouple` rebuilds Cluster-CAM heatmaps for a new α from an explanation's cluster maps
and scores — no forward pass. :func:`sweep` runs Cluster-CAM over a grid of one parameter
(α, Q, K or the clustering method) on a batch of images and measures each setting with the
metrics of :mod:`camlab.metrics`; for α it clusters and scores once per image.
:func:`compare` measures whole settings side by side, :func:`seed_stability` how much a setting's
maps depend on the seed. :func:`rank_settings` turns either into a
mean rank over the metrics, and :func:`recommend` applies the rule notebook 06 uses to choose
defaults.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from . import metrics as M
from .explanation import Explanation
from .maps import normalize_maps
from .methods.cluster import ClusterCAM

__all__ = ["recouple", "sweep", "compare", "seed_stability", "rank_settings", "recommend", "METRIC_DIRECTIONS"]

# +1: higher is better, −1: lower is better; coverage is a diagnostic, not ranked
METRIC_DIRECTIONS = {"drop": -1, "increase": +1, "insertion": +1, "deletion": -1, "pointing": +1}


def recouple(exp: Explanation, alpha: float, size: tuple[int, int]) -> torch.Tensor:
    """Cluster-CAM heatmaps (B×H×W) for another α from a Cluster-CAM explanation, no forward pass."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat, _, _ = ClusterCAM.couple(exp.cluster_maps, exp.cluster_scores, alpha, size)
    return normalize_maps(heat.clamp_min(0))


def sweep(
    module: nn.Module,
    x: torch.Tensor,
    layer: str,
    parameter: str,
    values: Sequence[Any],
    n_steps: int = 8,
    base: dict[str, Any] | None = None,
    pointing: tuple[torch.Tensor, torch.Tensor, Sequence[tuple[int, int, int, int]]] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Cluster-CAM on ``x`` for each value of ``parameter`` (``alpha``, ``n_clusters``,
    ``n_eigvecs`` or ``clustering``), other parameters from ``base``; one row per setting and
    image, with every metric and the forward passes the explanation cost.

    ``pointing = (composites, targets, boxes)`` adds the grid pointing game: the mean share of
    each composite map's mass inside its target's tile, reported on every row of that setting
    as ``pointing``. For α, clustering and scoring run once; only the coupling is redone.
    """
    from tqdm.auto import tqdm

    if parameter not in ("alpha", "n_clusters", "n_eigvecs", "clustering"):
        raise ValueError(f"cannot sweep {parameter!r}; use alpha, n_clusters, n_eigvecs or clustering")
    base = dict(base or {})
    cache: dict[int, Explanation] = {}

    def explain(inputs: torch.Tensor, targets, value) -> tuple[torch.Tensor, torch.Tensor, int]:
        if parameter == "alpha":
            key = id(inputs)
            if key not in cache:
                cache[key] = ClusterCAM(module, layer, **base)(inputs, targets)
            exp = cache[key]
            return recouple(exp, float(value), tuple(inputs.shape[-2:])), exp.targets, 0
        exp = ClusterCAM(module, layer, **{**base, parameter: value})(inputs, targets)
        return exp.heatmaps, exp.targets, exp.n_forward // inputs.shape[0]

    return [row for value in tqdm(values, desc=f"sweep {parameter}", disable=not progress)
            for row in _evaluate(module, x, lambda inputs, targets: explain(inputs, targets, value), n_steps, pointing, parameter=parameter, value=value)]


def compare(
    module: nn.Module,
    x: torch.Tensor,
    layer: str,
    settings: Mapping[str, dict[str, Any]],
    n_steps: int = 8,
    pointing: tuple[torch.Tensor, torch.Tensor, Sequence[tuple[int, int, int, int]]] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Cluster-CAM on ``x`` for each named setting (a dict of ClusterCAM keyword arguments), with
    the rows of :func:`sweep` (``value`` is the setting's name): the joint check of settings that
    a one-knob-at-a-time sweep cannot make."""
    from tqdm.auto import tqdm

    def explain(setting):
        def run(inputs, targets):
            exp = ClusterCAM(module, layer, **setting)(inputs, targets)
            return exp.heatmaps, exp.targets, exp.n_forward // inputs.shape[0]
        return run

    return [row for name, setting in tqdm(settings.items(), desc="compare settings", disable=not progress)
            for row in _evaluate(module, x, explain(setting), n_steps, pointing, parameter="setting", value=name)]


def _evaluate(module, x, explain, n_steps, pointing, **fields) -> list[dict[str, Any]]:
    """One row per image of ``x`` with every metric of the heatmaps ``explain(inputs, targets)``
    gives, and the grid pointing game on ``pointing`` (NaN without it)."""
    heat, targets, n_forward = explain(x, None)
    res = M.measure(module, x, heat, targets, n_steps=n_steps)
    point = float("nan")
    if pointing is not None:
        xc, tc, boxes = pointing
        hc, _, _ = explain(xc, tc)
        point = sum(M.grid_pointing(hc[i], boxes[i]).mass_inside for i in range(len(boxes))) / max(1, len(boxes))
    return [{**fields, "image": i, "n_forward": n_forward, "pointing": point, **{k: float(v[i]) for k, v in res.items()}} for i in range(x.shape[0])]


def seed_stability(module: nn.Module, x: torch.Tensor, layer: str, seeds: Sequence[int] = range(5), **setting: Any) -> dict[str, float]:
    """How much Cluster-CAM on ``x`` depends on its seed, for one setting (ClusterCAM keyword
    arguments). Over every pair of seeds and image: the mean adjusted Rand index of the two
    clusterings (``ari``) and the mean and lowest correlation of the two heatmaps (``corr``,
    ``corr_min``; pairs with a constant map are left out). Against the first seed: the share of
    the other seeds whose base and scissors are exactly the same set of channels
    (``same_base``, ``same_scissors``)."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"seed stability needs at least 2 seeds, got {seeds}")
    runs = [ClusterCAM(module, layer, **{**setting, "seed": s})(x) for s in seeds]

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


def rank_settings(rows: Sequence[dict[str, Any]], metrics: Sequence[str] = tuple(METRIC_DIRECTIONS)) -> list[dict[str, Any]]:
    """Mean of each metric per value, each metric's rank of the values (1 = best), and the mean
    rank; sorted best first."""
    values = list(dict.fromkeys(r["value"] for r in rows))
    metrics = [m for m in metrics if all(r.get(m) == r.get(m) for r in rows)]  # leave out metrics not measured (NaN)
    columns = [m for m in (*metrics, "coverage", "n_forward") if all(m in r for r in rows)]
    means = {v: {m: sum(r[m] for r in rows if r["value"] == v) / max(1, sum(1 for r in rows if r["value"] == v)) for m in columns} for v in values}
    ranks = {v: {} for v in values}
    for m in metrics:
        order = sorted(values, key=lambda v: -METRIC_DIRECTIONS[m] * means[v][m])
        for pos, v in enumerate(order, 1):
            ranks[v][m] = pos
    table = [{"value": v, **means[v], "mean_rank": sum(ranks[v].values()) / len(metrics)} for v in values]
    return sorted(table, key=lambda r: r["mean_rank"])


def recommend(table: Sequence[dict[str, Any]], current: Any = None, tie: float = 0.5) -> Any:
    """The value a :func:`rank_settings` table supports, by a rule fixed in advance: the best mean
    rank, where values within ``tie`` of it count as tied; ties go to the cheaper setting (fewer
    forward passes), then to the value nearest ``current`` (the present default)."""
    best = min(r["mean_rank"] for r in table)
    tied = [r for r in table if r["mean_rank"] <= best + tie]

    def distance(v):
        try:
            return abs(float(v) - float(current))
        except (TypeError, ValueError):
            return 0.0 if v == current else 1.0

    return min(tied, key=lambda r: (round(r.get("n_forward", 0.0), 6), distance(r["value"]), r["mean_rank"]))["value"]
