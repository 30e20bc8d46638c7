"""What a table of per-image metrics says, in words a notebook can print: which methods are the
same method twice, and where one method is better or worse than a reference image by image.

>>> kept, aliases = distinct_methods(rows, ["drop", "deletion"])  # doctest: +SKIP
>>> v = compare(rows, "clustercam", "gradcam", ["drop", "road"])  # doctest: +SKIP
>>> v.better, v.worse, v.tied  # metric names, by the paired 95 % interval
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..evaluation.metrics import HIGHER_IS_BETTER, METRICS
from ..evaluation.stats import Difference, as_number, paired_difference

__all__ = [
    "distinct_methods",
    "counted_once",
    "rank_by_mean",
    "largest_difference",
    "compare",
    "claim",
    "Comparison",
]


def _by_method(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = r
    return by


def _present(rows: list[dict[str, Any]]) -> list[str]:
    """The metrics of :data:`camlab.metrics.METRICS` that ``rows`` measured."""
    return [m for m in METRICS if any(r.get(m, "") not in ("", None) for r in rows)]


def largest_difference(rows: Iterable[dict[str, Any]], a: str, b: str, metrics: Sequence[str] | None = None) -> float:
    """The largest absolute difference between methods ``a`` and ``b`` over the images both have
    and ``metrics`` (``None``: every metric of :data:`camlab.metrics.METRICS` the rows have; a
    value neither measured, NaN in both, is skipped) — how far apart two methods that should be
    the same one are, or how close two different ones come.

    Raises:
        ValueError: either method has no rows, or the two share no image.
    """
    rows = list(rows)
    metrics = _present(rows) if metrics is None else metrics
    by = _by_method(rows)
    for m in (a, b):
        if m not in by:
            raise ValueError(f"no rows for method {m!r}; methods: {', '.join(by)}")
    images = [i for i in by[a] if i in by[b]]
    if not images:
        raise ValueError(f"{a!r} and {b!r} share no image")
    x = np.array([[as_number(by[a][i].get(k, "")) for k in metrics] for i in images])
    y = np.array([[as_number(by[b][i].get(k, "")) for k in metrics] for i in images])
    d = np.abs(x - y)
    d[np.isnan(x) & np.isnan(y)] = 0.0
    return float(np.max(d)) if np.isfinite(d).all() else float("inf")  # measured for one, not the other: not the same


def distinct_methods(
    rows: Iterable[dict[str, Any]], metrics: Sequence[str], rtol: float = 1e-4, atol: float = 1e-6
) -> tuple[list[str], dict[str, str]]:
    """The methods of the harness's rows, with those that give the same value as an earlier one
    on every image and every metric (``|a − b| ≤ atol + rtol·|b|``) left out. Returns
    ``(kept, aliases)``, ``aliases`` mapping each left-out method to the kept one it equals.

    The defaults forgive only the digits a CSV drops. Maps that are equal by construction but
    computed along different float paths — CAM, XGrad-CAM and HiResCAM at a layer followed only
    by pooling and a linear head, where they are Grad-CAM — differ by rounding, and a metric that
    thresholds the map (a top-k mask, a pixel order) can turn that into a difference of 1e-4–1e-3
    on a [0, 1] score; pass ``atol`` (e.g. 1e-3) for them, and check with
    :func:`largest_difference` that the methods kept apart differ by far more."""
    by = _by_method(rows)
    kept: list[str] = []
    aliases: dict[str, str] = {}
    for m, rs in by.items():
        for k in kept:
            ref = by[k]
            if set(rs) != set(ref):
                continue
            a = np.array([[as_number(rs[i].get(x, "")) for x in metrics] for i in rs])
            b = np.array([[as_number(ref[i].get(x, "")) for x in metrics] for i in rs])
            if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                aliases[m] = k
                break
        else:
            kept.append(m)
    return kept, aliases


def counted_once(rows: Iterable[dict[str, Any]], atol: float = 1e-3) -> tuple[list[str], dict[str, str]]:
    """The methods of a Table 1 run as the workbook counts them when it ranks methods: a method
    whose every value, on every image and every metric of :data:`camlab.metrics.METRICS` the rows
    have, lies within ``atol`` of an earlier method's is that method (at ``bn2`` CAM, XGrad-CAM
    and HiResCAM are Grad-CAM; see :func:`distinct_methods` for why ``atol`` is 1e-3). Methods
    are taken in the rows' order. Returns ``(kept, aliases)`` as :func:`distinct_methods`."""
    rows = list(rows)
    return distinct_methods(rows, _present(rows), atol=atol)


def rank_by_mean(rows: Iterable[dict[str, Any]], metric: str, methods: Sequence[str]) -> list[str]:
    """``methods`` ordered best first by their mean ``metric`` over ``rows`` (lower first where
    lower is better, :data:`camlab.metrics.HIGHER_IS_BETTER`); a method's rank is its index + 1."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"{metric!r} has no better direction; metrics: {', '.join(HIGHER_IS_BETTER)}")
    by = _by_method(rows)
    missing = [m for m in methods if m not in by]
    if missing:
        raise ValueError(f"no rows for {', '.join(map(repr, missing))}; methods: {', '.join(by)}")
    mean = {m: float(np.nanmean([as_number(r.get(metric, "")) for r in by[m].values()])) for m in methods}
    return sorted(methods, key=lambda m: -mean[m] if HIGHER_IS_BETTER[metric] else mean[m])


@dataclass
class Comparison:
    """``method`` against ``reference`` over the images both have: per metric the paired
    difference (method − reference) with its 95 % interval and sign-flip permutation p, and the metrics where
    the interval says better, worse, or does not exclude 0 (tied)."""

    method: str
    reference: str
    n_images: int
    differences: dict[str, Difference] = field(default_factory=dict)
    better: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)

    def describe(self, scale: dict[str, float] | None = None) -> str:
        """Three lines: better on …, worse on …, not separated on …, each difference with its
        interval (multiplied by ``scale[metric]``, e.g. 100 for percentages)."""
        scale = scale or {}

        def item(m: str) -> str:
            d, k = self.differences[m], scale.get(m, 1.0)
            return f"{m} {k * d.mean:+.3g} [{k * d.lo:+.3g}, {k * d.hi:+.3g}]"

        return "\n".join(
            [
                f"{self.method} − {self.reference} ({self.n_images} images): "
                f"better on {'; '.join(map(item, self.better)) or 'no metric'}",
                f"    worse on {'; '.join(map(item, self.worse)) or 'no metric'}",
                f"    not separated on {', '.join(self.tied) or 'no metric'}",
            ]
        )


def compare(rows: Iterable[dict[str, Any]], method: str, reference: str, metrics: Sequence[str]) -> Comparison:
    """:class:`Comparison` of ``method`` with ``reference`` on each of ``metrics`` (those of
    :data:`camlab.metrics.HIGHER_IS_BETTER`), paired image by image.

    Raises:
        ValueError: either method has no rows, or a metric has no better direction.
    """
    by = _by_method(rows)
    for m in (method, reference):
        if m not in by:
            raise ValueError(f"no rows for method {m!r}; methods: {', '.join(by)}")
    images = [i for i in by[method] if i in by[reference]]
    out = Comparison(method, reference, len(images))
    for x in metrics:
        if x not in HIGHER_IS_BETTER:
            raise ValueError(f"{x!r} has no better direction; metrics: {', '.join(HIGHER_IS_BETTER)}")
        d = paired_difference(
            [as_number(by[method][i].get(x, "")) for i in images],
            [as_number(by[reference][i].get(x, "")) for i in images],
        )
        out.differences[x] = d
        if d.lo <= 0 <= d.hi or d.n == 0:
            out.tied.append(x)
        elif (d.mean > 0) == HIGHER_IS_BETTER[x]:
            out.better.append(x)
        else:
            out.worse.append(x)
    return out


def claim(comparison: Comparison, metrics: Sequence[str] | None = None) -> str:
    """A paper's claim that ``comparison.method`` beats ``comparison.reference`` on every one of
    ``metrics`` (default: every metric compared), judged by the paired intervals:
    ``"reproduced"`` — better on each; ``"contradicted"`` — worse on at least one;
    ``"not separated"`` — otherwise (no metric worse, at least one whose interval contains 0: the
    data cannot tell, which is not a refutation).

    Raises:
        ValueError: a metric was not compared.
    """
    metrics = list(comparison.differences if metrics is None else metrics)
    missing = [m for m in metrics if m not in comparison.differences]
    if missing:
        raise ValueError(f"not compared: {', '.join(missing)}; compared: {', '.join(comparison.differences)}")
    if any(m in comparison.worse for m in metrics):
        return "contradicted"
    return "reproduced" if all(m in comparison.better for m in metrics) else "not separated"
