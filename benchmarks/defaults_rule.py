"""The rule that chose Cluster-CAM's defaults (``camlab.methods.cluster.DEFAULTS``), applied to
the CSVs of ``benchmarks/full_run.py``: a one-off protocol, kept beside the run it judged rather
than in the package. ``benchmarks/RESULTS.md`` (Step 8) records the rule as written and committed
before any number of the 200-image run existed:

1. **Candidates.** Every clustering × coupling pair at Q = 8 and α = 0.8 on all 200 dev images
   (``full_run.py grid``); then α and Q around the best two seed-stable pairs (``full_run.py alpha_q``).
2. **Stability first.** A setting is a candidate only if it is seed-stable: mean heatmap
   correlation between seeds 0–4 of at least :data:`STABLE` (0.99). Ward has no seed and passes
   by construction.
3. **Ranking.** For each of confidence drop ↓, increase ↑, insertion ↑, deletion ↓ and the grid
   pointing game ↑, each setting gets the 95 % bootstrap interval of its mean; its rank is 1 + the
   number of settings whose interval lies wholly on the better side of its own — settings whose
   intervals overlap are tied. The mean of the five ranks orders the settings.
4. **Ties** (equal best mean rank) go to fewer forward passes (smaller Q), then to the paper's
   form (eq 22 as printed before camlab's normalised form before the weighted coupling; K-means
   before spectral before Ward).

:func:`read_measured` reads the CSVs (each setting parsed once from its label into a dict),
:func:`rank_settings` is step 3, :func:`choose_setting` steps 2–4 and :func:`paper_distance` the
last tie-break. Used by ``full_run.py choose`` and ``alpha_q`` (this folder is on ``sys.path``
when a script here runs) and by notebooks 05 and 06, which put ``../benchmarks`` on ``sys.path``.

    >>> stems = ["results/grid_efficientnet_lite0", "results/alpha_q_efficientnet_lite0"]
    >>> rows, stability = read_measured(stems)  # doctest: +SKIP
    >>> winner, table = choose_setting(rows, stability)  # doctest: +SKIP
    >>> winner["setting"]  # doctest: +SKIP
    {'alpha': 0.8, 'clustering': 'ward', 'coupling': 'normalized', 'n_clusters': 10}
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from camlab.metrics import HIGHER_IS_BETTER

from camlab.book.ablation_curves import RANKED, read_run, setting_of
from camlab.evaluation import stats as S
from camlab.methods.cluster import CLUSTERINGS, COUPLINGS, DEFAULTS

__all__ = ["STABLE", "RANKED", "PAPER_FORM", "read_measured", "rank_settings", "paper_distance", "choose_setting"]

STABLE = 0.99  # step 2: a candidate's mean heatmap correlation between seeds must reach this
PAPER_FORM = {"clustering": "kmeans", "coupling": "paper"}  # step 4: the paper's K-means and eq 22 as printed


def read_measured(stems: Sequence[str | Path]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Rows for :func:`choose_setting` from the CSVs ``full_run.py`` writes for each stem:
    ``<stem>.csv`` (harness rows, one per image and setting), ``<stem>_pointing.csv`` (one row per
    tile) and ``<stem>_stability.csv`` (mean heatmap correlation between seeds per setting).

    Every row has ``value`` (the setting's label, e.g. ``"clustercam:alpha=0.8;clustering=ward"``)
    and ``setting`` (the keyword arguments that label names, parsed once per label by
    :func:`camlab.book.ablation_curves.setting_of`); image rows keep the CSV's columns, tile rows carry
    ``pointing`` (the map's mass inside the tile). Reading goes through
    :func:`camlab.book.ablation_curves.read_run`: missing files add nothing, and a setting that two
    stems both measured counts once per image and tile. Stability is keyed by label."""
    run = read_run(stems)
    settings = {label: setting_of(label) for label in run.labels}
    rows = [{**r, "value": r["method"], "setting": settings[r["method"]]} for r in run.rows]
    rows += [{"value": t["method"], "setting": settings[t["method"]], "pointing": t["pointing"]} for t in run.tiles]
    stability: dict[str, float] = {}
    for stem in map(Path, stems):
        path = stem.with_name(stem.name + "_stability.csv")
        if path.is_file():
            with path.open(newline="") as fh:
                stability.update({r["method"]: float(r["corr"]) for r in csv.DictReader(fh)})
    return rows, stability


def rank_settings(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = RANKED) -> list[dict[str, Any]]:
    """Step 3. Per ``value`` (a setting): each metric's mean and 95 % bootstrap interval (``m``,
    ``m_lo``, ``m_hi``; :func:`camlab.evaluation.stats.mean_interval` over the rows that measured it: empty or
    non-finite values are left out), and its rank ``m_rank`` = 1 + the number of values whose
    interval lies wholly on the better side of its own (:data:`camlab.metrics.HIGHER_IS_BETTER`),
    so that overlapping intervals tie. Only metrics with an interval for every value are ranked;
    ``coverage``, where measured, gets its interval but no rank. ``mean_rank`` averages the ranks
    (NaN when no metric is ranked), ``n_forward`` the rows' forward passes, and ``setting`` is the
    first ``setting`` the value's rows carry. Sorted by mean rank, then fewer forward passes.

    Raises:
        ValueError: a metric has no better direction.
    """
    if unknown := [m for m in metrics if m not in HIGHER_IS_BETTER]:
        raise ValueError(f"{', '.join(unknown)}: no better direction to rank by (camlab.metrics.HIGHER_IS_BETTER)")
    values = list(dict.fromkeys(r["value"] for r in rows))

    def measured(v: Any, m: str) -> list[float]:
        found = (r.get(m) for r in rows if r["value"] == v)
        return [x for x in (float(f) for f in found if f not in ("", None)) if math.isfinite(x)]

    table: dict[Any, dict[str, Any]] = {v: {"value": v} for v in values}
    for r in rows:
        if "setting" in r:
            table[r["value"]].setdefault("setting", r["setting"])
    ranked = []
    for m in (*metrics, "coverage"):
        if not any(measured(v, m) for v in values):
            continue
        for v in values:
            iv = S.mean_interval(measured(v, m))
            table[v].update({m: iv.mean, f"{m}_lo": iv.lo, f"{m}_hi": iv.hi})
        if m in metrics and not any(math.isnan(table[v][f"{m}_lo"]) for v in values):
            ranked.append(m)
    for v in values:
        costs = [float(r["n_forward"]) for r in rows if r["value"] == v and "n_forward" in r]
        table[v]["n_forward"] = sum(costs) / len(costs) if costs else math.nan
    for m in ranked:
        for v in values:
            lo, hi = table[v][f"{m}_lo"], table[v][f"{m}_hi"]
            if HIGHER_IS_BETTER[m]:  # better and separated: the other's whole interval beyond ours
                table[v][f"{m}_rank"] = 1 + sum(table[u][f"{m}_lo"] > hi for u in values)
            else:
                table[v][f"{m}_rank"] = 1 + sum(table[u][f"{m}_hi"] < lo for u in values)
    for v in values:
        table[v]["mean_rank"] = sum(table[v][f"{m}_rank"] for m in ranked) / len(ranked) if ranked else math.nan
    return sorted(table.values(), key=lambda r: (r["mean_rank"], r["n_forward"]))


def paper_distance(setting: Mapping[str, Any]) -> int:
    """Step 4's last tie-break: how far a setting is from the paper's form, 0 for
    :data:`PAPER_FORM`. The coupling counts before the clustering; within each, the paper's choice
    comes first and the others follow in the order of ``camlab.methods.cluster.COUPLINGS`` and
    ``CLUSTERINGS`` (eq 22 as printed, normalised, weighted; K-means, spectral, Ward). A setting
    that leaves the clustering or the coupling out has ``DEFAULTS``'."""

    def place(names: Sequence[str], key: str) -> int:
        name = setting.get(key, DEFAULTS[key])
        if name not in names:
            raise ValueError(f"unknown {key} {name!r}; use one of {names}")
        paper = PAPER_FORM[key]
        return 0 if name == paper else 1 + [n for n in names if n != paper].index(name)

    return place(CLUSTERINGS, "clustering") + len(CLUSTERINGS) * place(COUPLINGS, "coupling")


def choose_setting(
    rows: Sequence[Mapping[str, Any]], stability: Mapping[Any, float], threshold: float = STABLE
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rule, steps 2–4, on rows as :func:`read_measured` gives them (each with ``value``,
    ``setting``, the metrics and ``n_forward``): keep the values whose ``stability`` reaches
    ``threshold`` (a value without one is not stable), rank them (:func:`rank_settings`), and of
    those tied at the best mean rank take the fewest forward passes, then the smallest
    :func:`paper_distance`. Returns the winner's row of the table and the table of the stable
    values, best first.

    Raises:
        ValueError: no value is stable, or no metric was measured for every stable value.
    """
    table = rank_settings([r for r in rows if stability.get(r["value"], 0.0) >= threshold])
    if not table:
        raise ValueError(f"no setting reaches a seed stability of {threshold}; measured: {dict(stability)}")
    if math.isnan(table[0]["mean_rank"]):
        raise ValueError(f"no metric of {', '.join(RANKED)} is measured for every stable setting: nothing to rank")
    tied = [r for r in table if r["mean_rank"] <= table[0]["mean_rank"] + 1e-9]
    return min(tied, key=lambda r: (round(r["n_forward"], 6), paper_distance(r["setting"]))), table
