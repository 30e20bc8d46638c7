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

from .metrics import HIGHER_IS_BETTER
from .stats import Difference, paired_difference

__all__ = ["distinct_methods", "compare", "Comparison", "as_number"]


def as_number(v: Any) -> float:
    """A metric value as the harness's rows hold it (a float, a bool, or their CSV text; ``""``
    for not measured) → float (NaN for not measured)."""
    if v in ("True", "False"):
        return float(v == "True")
    return float(v) if v not in ("", None) else float("nan")


def _by_method(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = r
    return by


def distinct_methods(rows: Iterable[dict[str, Any]], metrics: Sequence[str], rtol: float = 1e-4) -> tuple[list[str], dict[str, str]]:
    """The methods of the harness's rows, with those that give the same value as an earlier one
    on every image and every metric (to ``rtol``, with an absolute floor of 1e-6) left out — e.g.
    CAM, XGrad-CAM and HiResCAM at a layer followed only by pooling and a linear head, where they
    are Grad-CAM. Returns ``(kept, aliases)``, ``aliases`` mapping each left-out method to the
    kept one it equals."""
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
            if np.allclose(a, b, rtol=rtol, atol=1e-6, equal_nan=True):
                aliases[m] = k
                break
        else:
            kept.append(m)
    return kept, aliases


@dataclass
class Comparison:
    """``method`` against ``reference`` over the images both have: per metric the paired
    difference (method − reference) with its 95 % interval and Wilcoxon p, and the metrics where
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
                f"{self.method} − {self.reference} ({self.n_images} images): better on {'; '.join(map(item, self.better)) or 'no metric'}",
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
        d = paired_difference([as_number(by[method][i].get(x, "")) for i in images], [as_number(by[reference][i].get(x, "")) for i in images])
        out.differences[x] = d
        if d.lo <= 0 <= d.hi or d.n == 0:
            out.tied.append(x)
        elif (d.mean > 0) == HIGHER_IS_BETTER[x]:
            out.better.append(x)
        else:
            out.worse.append(x)
    return out
