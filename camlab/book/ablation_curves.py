"""Cluster-CAM's ablations read from a committed run: curves over a knob, each setting against a
reference setting image by image, and how much of it is coverage.

``benchmarks/full_run.py grid`` and ``alpha_q`` write, per part, ``<stem>.csv`` (one row per image
and setting, the harness's columns) and ``<stem>_pointing.csv`` (one row per tile of the grid
pointing game). :func:`read_run` reads one or more parts into a :class:`Run`;
:func:`against` gives every setting its means with 95 % intervals and its paired differences to a
reference (:func:`camlab.book.verdict.compare`: better, worse or not separated by the paired interval);
:func:`holm_adjusted` corrects their p for the number of comparisons;
:func:`coverage_correlation` asks whether a metric, across the settings, mostly follows the share
of the image the maps keep (Pearson r of the settings' means, with a bootstrap interval over the
settings or over the images). For the live part of notebook 06: :func:`measure_settings` runs
named settings on a batch with chosen metrics (sharing one forward pass,
:class:`camlab.methods.cluster.ClusterRuns`), and :func:`axis_agreement` says whether the maps move more
along one knob of a two-knob grid than along the other (the paper's Fig. 7 claim about K and Q).

>>> run = read_run(["benchmarks/results/grid_efficientnet_lite0",  # doctest: +SKIP
...                 "benchmarks/results/alpha_q_efficientnet_lite0"])
>>> ref = find_label(run.labels, clustering="ward", coupling="normalized", alpha=0.8, n_clusters=10)  # doctest: +SKIP
>>> table = against(run, run.labels, ref)  # doctest: +SKIP
>>> table[0].means["drop"], table[0].comparison.worse  # doctest: +SKIP
>>> coverage_correlation(run, "deletion", resample="images")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..evaluation import stats as S
from ..evaluation.stats import as_number
from ..methods.cluster import ClusterRuns
from .verdict import Comparison, compare

__all__ = [
    "Run",
    "SettingSummary",
    "RANKED",
    "read_run",
    "setting_of",
    "find_label",
    "against",
    "holm_adjusted",
    "coverage_correlation",
    "measure_settings",
    "axis_agreement",
]

RANKED = (
    "drop",
    "increase",
    "insertion",
    "deletion",
    "pointing",
)  # the rule's five metrics (benchmarks/RESULTS.md, Step 8)


@dataclass
class Run:
    """A committed run: ``rows`` one per image and setting (``method`` = the setting's label,
    ``image``, the metrics as text), ``tiles`` one per tile of the grid pointing game with
    ``image`` = ``"<composite>/<class_index>"`` (so that tiles pair like images), ``pointing`` =
    the map's mass inside the tile and the composite map's ``coverage``; ``labels`` the settings
    in the order first seen."""

    rows: list[dict[str, Any]]
    tiles: list[dict[str, Any]]
    labels: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len({r["image"] for r in self.rows})

    @property
    def n_tiles(self) -> int:
        return len({t["image"] for t in self.tiles})


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_run(stems: Sequence[str | Path]) -> Run:
    """The rows of ``<stem>.csv`` and the tiles of ``<stem>_pointing.csv`` for every stem (missing
    files add nothing); a setting that two parts both measured counts once per image and tile
    (the first part's row is kept)."""
    rows, tiles, seen = [], [], set()
    for stem in map(Path, stems):
        for r in _read(stem.with_name(stem.name + ".csv")):
            if (key := ("image", r["method"], r["image"])) not in seen:
                seen.add(key)
                rows.append(dict(r))
        for t in _read(stem.with_name(stem.name + "_pointing.csv")):
            if (key := ("tile", t["method"], t["composite"], t["class_index"])) not in seen:
                seen.add(key)
                tiles.append(
                    {
                        "method": t["method"],
                        "image": f"{t['composite']}/{t['class_index']}",
                        "pointing": t["mass_inside"],
                        "coverage": t.get("coverage", ""),
                    }
                )
    labels = list(dict.fromkeys([r["method"] for r in rows] + [t["method"] for t in tiles]))
    return Run(rows, tiles, labels)


def setting_of(label: str) -> dict[str, Any]:
    """The keyword arguments a harness label names: ``"clustercam:alpha=0.8;n_clusters=10"`` →
    ``{"alpha": 0.8, "n_clusters": 10}`` (:func:`camlab.evaluation.harness.parse_methods`)."""
    from ..evaluation.harness import parse_methods

    return parse_methods([label])[0][2]


def find_label(labels: Sequence[str], **params: Any) -> str:
    """The one label among ``labels`` whose setting has every ``params`` value (numbers compared
    as numbers: ``alpha=1`` finds ``alpha=1.0``).

    Raises:
        LookupError: no label, or more than one, matches.
    """

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return math.isclose(float(a), float(b))
        return a == b

    hits = [lab for lab in labels if all(k in (s := setting_of(lab)) and same(s[k], v) for k, v in params.items())]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} settings match {params}: {hits or 'none'}")
    return hits[0]


@dataclass
class SettingSummary:
    """One setting of a run: its parameters (empty for a name that is no harness label), each
    metric's mean with its 95 % interval, and, for every setting but the reference, its
    :class:`~camlab.book.verdict.Comparison` with the reference on
    the ranked metrics (pointing paired by tile, the rest by image) and the paired difference of
    its coverage (a diagnostic: no better direction)."""

    label: str
    params: dict[str, Any]
    means: dict[str, S.Interval]
    comparison: Comparison | None = None
    coverage_difference: S.Difference | None = None

    @property
    def separated(self) -> list[str]:
        """The metrics on which the paired interval to the reference excludes 0."""
        return [] if self.comparison is None else self.comparison.better + self.comparison.worse


def _values(rows: Sequence[dict[str, Any]], label: str, metric: str) -> dict[str, float]:
    return {r["image"]: as_number(r.get(metric, "")) for r in rows if r["method"] == label}


def against(run: Run, labels: Sequence[str], reference: str, metrics: Sequence[str] = RANKED) -> list[SettingSummary]:
    """For each of ``labels`` (in order): its means [95 % intervals] on ``metrics`` and coverage,
    and its paired differences to ``reference`` (setting − reference, image by image; the
    pointing game tile by tile)."""
    if reference not in run.labels:
        raise ValueError(f"no rows for the reference {reference!r}")
    image_metrics = [m for m in metrics if m != "pointing"]
    out = []
    for label in labels:
        means = {}
        for m in (*metrics, "coverage"):
            values = _values(run.tiles if m == "pointing" else run.rows, label, m)
            means[m] = S.mean_interval(list(values.values()))
        try:
            params = setting_of(label)
        except ValueError:  # a name that is not a harness label (a live run's own names)
            params = {}
        summary = SettingSummary(label, params, means)
        if label != reference:
            c = compare(run.rows, label, reference, image_metrics)
            if "pointing" in metrics and run.tiles:
                p = compare(run.tiles, label, reference, ["pointing"])
                c.differences.update(p.differences)
                c.better, c.worse, c.tied = c.better + p.better, c.worse + p.worse, c.tied + p.tied
            summary.comparison = c
            a, b = _values(run.rows, label, "coverage"), _values(run.rows, reference, "coverage")
            common = [i for i in a if i in b]
            summary.coverage_difference = S.paired_difference([a[i] for i in common], [b[i] for i in common])
        out.append(summary)
    return out


def holm_adjusted(summaries: Sequence[SettingSummary]) -> dict[tuple[str, str], float]:
    """Every paired difference of ``summaries`` (those with a comparison), tested together as one
    family: ``{(label, metric): Holm-adjusted sign-flip p}`` (Holm 1979, :func:`camlab.evaluation.stats.holm`).
    A separation by the paired interval whose adjusted p is at most 0.05 survives the correction
    for the number of comparisons made; NaN stays NaN."""
    keys = [(s.label, m) for s in summaries if s.comparison is not None for m in s.comparison.differences]
    by = {s.label: s for s in summaries}
    adjusted = S.holm([by[label].comparison.differences[m].p for label, m in keys])
    return dict(zip(keys, adjusted, strict=True))


def _matrix(rows: Sequence[dict[str, Any]], labels: Sequence[str], metric: str) -> np.ndarray:
    """S×N values of ``metric``, one row per label, over the units every label measured."""
    by = [_values(rows, lab, metric) for lab in labels]
    units = sorted(set.intersection(*(set(v) for v in by))) if by else []
    if not units:
        raise ValueError(f"no unit has {metric!r} for every setting")
    return np.array([[v[u] for u in units] for v in by], dtype=float)


def coverage_correlation(
    run: Run,
    metric: str,
    labels: Sequence[str] | None = None,
    resample: str = "settings",
    n_resamples: int = 2000,
    confidence: float = S.CONFIDENCE,
    seed: int = 0,
) -> S.Interval:
    """Pearson's r, across the settings, between a setting's mean coverage (the mean map value
    over the images) and its mean ``metric`` (the pointing game's over the tiles), with a
    percentile bootstrap interval.

    ``resample="settings"`` draws the settings with replacement (is the relation a property of
    the family of settings, or of a few of them?); ``"images"`` keeps the settings and draws the
    images (and, for the pointing game, the tiles apart) with replacement (how precisely is r
    measured?). ``n`` of the result is the number of settings.
    """
    if resample not in ("settings", "images"):
        raise ValueError(f"resample must be 'settings' or 'images', got {resample!r}")
    labels = list(labels if labels is not None else run.labels)
    cov = _matrix(run.rows, labels, "coverage")
    val = _matrix(run.tiles if metric == "pointing" else run.rows, labels, metric)
    paired = metric != "pointing"

    cm, vm = cov.mean(1), val.mean(1)
    if resample == "settings":
        return S.correlation_interval(cm, vm, confidence=confidence, n_resamples=n_resamples, seed=seed)

    def r(x: np.ndarray, y: np.ndarray) -> float:
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return math.nan
        return float(np.corrcoef(x, y)[0, 1])

    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        i = rng.integers(0, cov.shape[1], cov.shape[1])
        j = i if paired else rng.integers(0, val.shape[1], val.shape[1])
        draws.append(r(cov[:, i].mean(1), val[:, j].mean(1)))
    draws_ = np.array(draws)
    draws_ = draws_[np.isfinite(draws_)]
    lo, hi = np.quantile(draws_, [(1 - confidence) / 2, (1 + confidence) / 2]) if draws_.size else (math.nan, math.nan)
    return S.Interval(r(cm, vm), float(lo), float(hi), len(labels))


def measure_settings(
    module: torch.nn.Module,
    layer: str,
    x: torch.Tensor,
    settings: Mapping[str, dict[str, Any]],
    metrics: Sequence[str] | None = ("drop", "increase", "insertion", "deletion", "coverage"),
    n_steps: int = 8,
    images: Sequence[Any] | None = None,
    pointing: tuple[torch.Tensor, torch.Tensor, Sequence[tuple[int, int, int, int]]] | None = None,
    progress: bool = False,
) -> tuple[dict[str, torch.Tensor], Run]:
    """Cluster-CAM on ``x`` for each named setting (ClusterCAM keyword arguments), measured with
    ``metrics`` only (``None``: every metric; the harness's rows,
    :func:`camlab.evaluation.harness.explanation_rows`); the settings share one forward pass per input and
    every cluster score (:class:`camlab.methods.cluster.ClusterRuns`). ``pointing = (tiles, targets,
    boxes)`` (from :func:`camlab.evaluation.harness.pointing_tiles`) adds the grid pointing game, one tile
    row per setting and tile. ``progress`` shows a bar over the settings.

    Rows are labelled ``method`` = ``str(name)``; they hold ``n_forward`` = 1 + Q, the passes per
    image the setting costs on its own. Returns the B×H×W maps by setting name and a :class:`Run` of the measurements.
    """
    from ..core.progress import progress as progress_bar
    from ..evaluation import metrics as M
    from ..evaluation.harness import explanation_rows
    runs = ClusterRuns(module, layer, x)
    composites = None if pointing is None else ClusterRuns(module, layer, pointing[0], pointing[1])
    maps, rows, tiles = {}, [], []
    for name, setting in progress_bar(settings.items(), desc="Cluster-CAM settings", enabled=progress):
        exp = runs.explain(setting)
        maps[name] = exp.heatmaps
        cost = 1 + exp.cluster_maps.shape[1]  # passes per image for this setting alone (the shared runs pay less)
        rows += [
            {**r, "n_forward": cost}
            for r in explanation_rows(
                module,
                x,
                exp,
                metrics=M.METRICS if metrics is None else list(metrics),
                n_steps=n_steps,
                method=str(name),
                images=images,
            )
        ]
        if composites is not None:
            heat = composites.explain(setting).heatmaps
            tiles += [
                {
                    "method": str(name),
                    "image": str(j),
                    "pointing": M.grid_pointing(heat[j], box).mass_inside,
                    "coverage": float(heat[j].mean()),
                }
                for j, box in enumerate(pointing[2])
            ]
    return maps, Run(rows, tiles, [str(n) for n in settings])


def axis_agreement(maps: Mapping[tuple[Any, Any], torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """How much the maps move along each knob of a two-knob grid.

    ``maps[(a, b)]`` is a B×H×W batch of maps for the setting (a, b). For each image: the mean
    Pearson correlation between the maps of every two settings that differ **only in the first
    knob** (same b), and the same for the second knob (same a). A knob the maps depend on more has
    the lower correlation. Pairs with a constant map are left out (NaN where an image has none).

    Returns two arrays of length B: along the first knob, along the second.
    """
    keys = list(maps)

    def corr(u: torch.Tensor, v: torch.Tensor) -> float:
        u, v = u.flatten().double(), v.flatten().double()
        if u.std() == 0 or v.std() == 0:
            return math.nan
        return float(torch.corrcoef(torch.stack([u, v]))[0, 1])

    b = next(iter(maps.values())).shape[0]
    out = []
    for axis in (0, 1):
        pairs = [
            (k, other)
            for i, k in enumerate(keys)
            for other in keys[i + 1 :]
            if k[1 - axis] == other[1 - axis] and k[axis] != other[axis]
        ]
        per_image = np.full(b, math.nan)
        for n in range(b):
            cs = [c for k, other in pairs if not math.isnan(c := corr(maps[k][n], maps[other][n]))]
            if cs:
                per_image[n] = float(np.mean(cs))
        out.append(per_image)
    return out[0], out[1]
