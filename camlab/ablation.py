"""Parameter sweeps for Cluster-CAM, with every metric, reusing what a parameter does not change.

:func:`sweep` runs Cluster-CAM over a grid of one parameter (α, the coupling, Q, K, the
clustering method or K-means' restarts) on a batch of images and measures each setting with the
metrics of :mod:`camlab.metrics`; :func:`compare` measures whole settings side by side. Both fit
each input once (one forward pass) and fit that state again for each clustering, so a setting
pays only for clusters never scored before: settings that differ only in α or the coupling cost
nothing after the first. :func:`seed_stability` says how much a setting's maps depend on the
seed. :func:`rank_settings` turns rows into a mean rank over the metrics, and :func:`recommend`
applies the rule notebook 06 uses to choose defaults.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from . import metrics as M
from .explanation import Explanation
from .methods.cluster import ClusterCAM, ClusterState

__all__ = ["ClusterRuns", "sweep", "compare", "seed_stability", "rank_settings", "recommend", "METRIC_DIRECTIONS", "SWEEPABLE"]

# +1: higher is better, −1: lower is better; coverage is a diagnostic, not ranked
METRIC_DIRECTIONS = {"drop": -1, "increase": +1, "insertion": +1, "deletion": -1, "pointing": +1}
SWEEPABLE = ("alpha", "coupling", "n_clusters", "n_eigvecs", "clustering", "n_init")

Pointing = tuple[torch.Tensor, torch.Tensor, Sequence[tuple[int, int, int, int]]]


class ClusterRuns:
    """Cluster-CAM on one batch for many settings: one forward pass of ``x`` and one fit per
    clustering, shared through a :class:`~camlab.methods.cluster.ClusterState` — settings that
    differ only in α or the coupling re-couple a fit, and a new clustering pays only for clusters
    never scored on this batch.

    >>> runs = ClusterRuns(model, "bn2", x)
    >>> a = runs.explain({"alpha": 0.5}); b = runs.explain({"alpha": 0.8, "coupling": "paper"})  # 1 + Q passes per image in all
    """

    def __init__(self, module: nn.Module, layer: str, x: torch.Tensor, targets=None):
        self.module, self.layer, self.x, self.targets = module, layer, x, targets
        self._fits: dict[str, ClusterState] = {}  # by the parameters a fit depends on
        self._first: ClusterState | None = None  # the fit that made the forward pass

    def fit(self, setting: Mapping[str, Any]) -> tuple[ClusterCAM, ClusterState]:
        """The ClusterCAM of ``setting`` (its keyword arguments) and its fitted state on the batch."""
        cam = ClusterCAM(self.module, self.layer, **setting)
        key = repr(sorted(cam.fit_params().items()))
        if key not in self._fits:
            self._fits[key] = cam.fit(self.x, self.targets) if self._first is None else cam.fit(self._first)
            if self._first is None:
                self._first = self._fits[key]
        return cam, self._fits[key]

    def explain(self, setting: Mapping[str, Any]) -> Explanation:
        """Cluster-CAM with ``setting`` on the batch."""
        cam, state = self.fit(setting)
        return cam.couple(state)


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
    return compare(module, x, layer, {value: {**base, parameter: value} for value in values}, n_steps, pointing, progress, parameter=parameter)


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
    """Cluster-CAM on ``x`` for each named setting (a dict of ClusterCAM keyword arguments), one
    row per setting and image (``value`` is the setting's name): the joint check of settings that
    a one-knob-at-a-time sweep cannot make. The settings share one forward pass per input and
    every cluster score (:class:`ClusterRuns`)."""
    from tqdm.auto import tqdm

    runs = ClusterRuns(module, layer, x)
    composites = None if pointing is None else ClusterRuns(module, layer, pointing[0], pointing[1])
    rows = []
    for name, setting in tqdm(settings.items(), desc=f"Cluster-CAM by {parameter}", disable=not progress):
        exp = runs.explain(setting)
        res = M.measure(module, x, exp.heatmaps, exp.targets, n_steps=n_steps)
        point = float("nan")
        if composites is not None:
            boxes = pointing[2]
            hc = composites.explain(setting).heatmaps
            point = sum(M.grid_pointing(hc[i], boxes[i]).mass_inside for i in range(len(boxes))) / max(1, len(boxes))
        cost = 1 + exp.cluster_maps.shape[1]  # per image, for this setting alone
        rows += [{"parameter": parameter, "value": name, "image": i, "n_forward": cost, "pointing": point, **{k: float(v[i]) for k, v in res.items()}} for i in range(x.shape[0])]
    return rows


def seed_stability(module: nn.Module, x: torch.Tensor, layer: str, seeds: Sequence[int] = range(5), **setting: Any) -> dict[str, float]:
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
