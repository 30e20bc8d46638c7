"""Do the metrics agree? Kendall's τ between the method rankings that each metric gives.

Every metric ranks the methods by its mean over the images; two metrics that measure the same
thing rank them alike (τ near 1), two that reward different things do not (τ near 0 or below).
The interval comes from resampling the images (:func:`camlab.evaluation.stats.ranking_agreement`), so a τ
whose interval reaches 0 says the data cannot tell whether the two metrics agree at all.

>>> table = metric_agreement(rows, ["drop", "road", "deletion"])  # doctest: +SKIP
>>> table[0]  # {'a': 'drop', 'b': 'road', 'tau': …, 'lo': …, 'hi': …, 'n': 200}
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .metrics import HIGHER_IS_BETTER
from .stats import as_number, ranking_agreement

__all__ = ["per_image_matrix", "metric_agreement"]


def per_image_matrix(
    rows: Iterable[dict[str, Any]], metric: str, methods: Sequence[str], unit: str = "image"
) -> np.ndarray:
    """M×N values of ``metric`` from the harness's rows (one per ``unit`` × method; values may be
    strings as read from a CSV), over the units every method measured, oriented so that higher is
    better (:data:`camlab.metrics.HIGHER_IS_BETTER`)."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"{metric!r} has no better direction; metrics: {', '.join(HIGHER_IS_BETTER)}")
    by: dict[str, dict[Any, float]] = {m: {} for m in methods}
    for r in rows:
        if r["method"] in by and str(r.get(metric, "")) not in ("", "nan"):
            by[r["method"]][r[unit]] = as_number(r[metric])
    units = sorted(set.intersection(*(set(v) for v in by.values()))) if methods else []
    if not units:
        raise ValueError(f"no {unit} has {metric!r} for every method of {list(methods)}")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    return sign * np.array([[by[m][u] for u in units] for m in methods])


def metric_agreement(
    rows: Iterable[dict[str, Any]],
    metrics: Sequence[str],
    methods: Sequence[str] | None = None,
    pointing_rows: Iterable[dict[str, Any]] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Kendall's τ with its 95 % interval for every pair of ``metrics`` (the pointing game, from
    ``pointing_rows``, as ``"pointing"``: its tiles are resampled apart from the images).

    Returns one dict per pair: ``a``, ``b``, ``tau``, ``lo``, ``hi``, ``n`` (images).
    """
    rows = list(rows)
    methods = list(methods) if methods is not None else list(dict.fromkeys(r["method"] for r in rows))
    mats = {m: per_image_matrix(rows, m, methods) for m in metrics if m != "pointing"}
    if "pointing" in metrics:
        if pointing_rows is None:
            raise ValueError("the pointing game needs pointing_rows (the …_pointing.csv of the run)")
        tiles = [{**r, "tile": (r["composite"], r["class_index"]), "pointing": r["mass_inside"]} for r in pointing_rows]
        mats["pointing"] = per_image_matrix(tiles, "pointing", methods, unit="tile")
    order = [m for m in metrics if m in mats]
    out = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            paired = "pointing" not in (a, b)
            iv = ranking_agreement(mats[a], mats[b], paired=paired, n_resamples=n_resamples, seed=seed)
            out.append({"a": a, "b": b, "tau": iv.mean, "lo": iv.lo, "hi": iv.hi, "n": iv.n})
    return out
