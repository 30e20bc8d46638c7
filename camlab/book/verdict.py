"""What a table of per-image metrics says: which methods are the same method twice, where one
method is better or worse than a reference image by image, and a chapter's verdict — a table of
claims, each with its measured value, 95 % interval, outcome and, where the data could not
separate it, the smallest difference the sample could have detected — with a few sentences that
are checked against the table.

>>> kept, aliases = distinct_methods(rows, ["drop", "deletion"])  # doctest: +SKIP
>>> v = compare(rows, "clustercam", "gradcam", ["drop", "road"])  # doctest: +SKIP
>>> v.better, v.worse, v.tied  # metric names, by the paired 95 % interval
>>> c = rows_claim(rows, "clustercam", "gradcam", "drop", "Cluster-CAM drops less")  # doctest: +SKIP
>>> verdict([c], notes=[("The drops are not separated.", {c.label: "not separated"})])  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..evaluation.metrics import HIGHER_IS_BETTER, METRICS
from ..evaluation.stats import Difference, as_number, detectable_difference, mean_interval, paired_difference

__all__ = [
    "distinct_methods",
    "counted_once",
    "rank_by_mean",
    "largest_difference",
    "compare",
    "claim",
    "Comparison",
    "OUTCOMES",
    "Claim",
    "Verdict",
    "mean_claim",
    "paired_claim",
    "rows_claim",
    "exact_claim",
    "verdict",
]

OUTCOMES = ("reproduced", "contradicted", "not separated")


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


@dataclass(frozen=True)
class Claim:
    """One row of a verdict: a claim (the paper's or the workbook's), the value measured for it,
    its 95 % interval, the outcome — ``"reproduced"`` (the interval lies on the claimed side),
    ``"contradicted"`` (on the other side) or ``"not separated"`` (it straddles the threshold) —
    and for "not separated" the smallest difference from the threshold this sample could have
    detected at 80 % power (:func:`camlab.evaluation.stats.detectable_difference`). ``label`` is
    the short name a verdict's notes refer to; ``paper`` the paper's number, where it gives one;
    ``n`` the number of values (images) behind the row. Values are already in the unit shown
    (``unit``, e.g. ``"points"``); NaN shows as "—"."""

    label: str
    claim: str
    value: float
    lo: float
    hi: float
    outcome: str
    detectable: float = math.nan
    n: int = 0
    paper: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r}; outcomes: {', '.join(OUTCOMES)}")


def _outcome(lo: float, hi: float, threshold: float, expect: int) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "not separated"
    if lo > threshold or hi < threshold:
        return "reproduced" if (lo > threshold) == (expect > 0) else "contradicted"
    return "not separated"


def mean_claim(
    label: str,
    claim: str,
    values: Sequence[float] | np.ndarray,
    threshold: float = 0.0,
    expect: int = 1,
    scale: float = 1.0,
    paper: str = "",
    unit: str = "",
) -> Claim:
    """The claim that the mean of ``values`` lies above ``threshold`` (``expect=1``) or below it
    (``expect=-1``), judged by its 95 % bootstrap interval; values, interval and detectable
    difference multiplied by ``scale`` (100 for points)."""
    if expect not in (1, -1):
        raise ValueError(f"expect must be 1 (above the threshold) or -1 (below), got {expect!r}")
    v = np.asarray(values, dtype=float).ravel()
    iv = mean_interval(v)
    outcome = _outcome(iv.lo, iv.hi, threshold, expect)
    mde = detectable_difference(v) if outcome == "not separated" else math.nan
    return Claim(label, claim, scale * iv.mean, scale * iv.lo, scale * iv.hi, outcome, scale * mde, iv.n, paper, unit)


def paired_claim(
    label: str,
    claim: str,
    values: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    expect: int = 1,
    scale: float = 1.0,
    paper: str = "",
    unit: str = "",
) -> Claim:
    """The claim that ``values`` exceed ``reference`` (``expect=1``) or fall below it
    (``expect=-1``) on average, paired image by image (pairs with a non-finite value left out): a
    :func:`mean_claim` on the per-image differences ``values − reference`` with threshold 0."""
    a, b = np.asarray(values, dtype=float).ravel(), np.asarray(reference, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    return mean_claim(label, claim, a - b, 0.0, expect, scale, paper, unit)


def rows_claim(
    rows: Iterable[dict[str, Any]],
    method: str,
    reference: str,
    metric: str,
    claim: str,
    label: str | None = None,
    scale: float = 1.0,
    paper: str = "",
    unit: str = "",
) -> Claim:
    """The claim that ``method`` is better than ``reference`` on ``metric`` (in the direction of
    :data:`camlab.metrics.HIGHER_IS_BETTER`), paired over the images of the harness's ``rows``
    both have; the measured value is ``method − reference``. ``label`` defaults to
    ``"<metric>: <method> vs <reference>"``.

    Raises:
        ValueError: either method has no rows, or the metric has no better direction.
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"{metric!r} has no better direction; metrics: {', '.join(HIGHER_IS_BETTER)}")
    by = _by_method(rows)
    for m in (method, reference):
        if m not in by:
            raise ValueError(f"no rows for method {m!r}; methods: {', '.join(by)}")
    images = [i for i in by[method] if i in by[reference]]
    a = [as_number(by[method][i].get(metric, "")) for i in images]
    b = [as_number(by[reference][i].get(metric, "")) for i in images]
    expect = 1 if HIGHER_IS_BETTER[metric] else -1
    return paired_claim(label or f"{metric}: {method} vs {reference}", claim, a, b, expect, scale, paper, unit)


def exact_claim(
    label: str, claim: str, value: float, holds: bool, n: int = 0, paper: str = "", unit: str = ""
) -> Claim:
    """A claim checked exactly rather than estimated (two maps equal to float precision, say):
    ``value`` is what was measured (the largest difference, for instance), ``holds`` whether it
    satisfies the claim; there is no interval."""
    outcome = "reproduced" if holds else "contradicted"
    return Claim(label, claim, float(value), math.nan, math.nan, outcome, math.nan, n, paper, unit)


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _count_sentences(text: str) -> int:
    return len(_SENTENCE_END.findall(text.strip())) or (1 if text.strip() else 0)


def _fmt(x: float, digits: int) -> str:
    return "—" if not math.isfinite(x) else f"{x:.{digits}g}"


@dataclass(frozen=True, repr=False)
class Verdict:
    """A chapter's verdict: its :class:`Claim` rows and at most five sentences (``notes``), each
    checked by :func:`verdict` against the outcomes of the rows it names. Renders as an HTML
    table in a notebook (``_repr_html_``) and as plain text (``str``)."""

    claims: tuple[Claim, ...]
    notes: tuple[str, ...] = ()
    digits: int = 3

    def __getitem__(self, label: str) -> Claim:
        for c in self.claims:
            if c.label == label:
                return c
        raise KeyError(f"no claim {label!r}; claims: {', '.join(c.label for c in self.claims)}")

    def cells(self) -> list[list[str]]:
        """The table's rows as text: claim, measured, 95 % interval, outcome, detectable, paper."""
        d = self.digits
        out = []
        for c in self.claims:
            unit = f" {c.unit}" if c.unit else ""
            interval = "—" if not math.isfinite(c.lo) else f"[{_fmt(c.lo, d)}, {_fmt(c.hi, d)}]"
            mde = f"≥ {_fmt(c.detectable, 2)}{unit}" if math.isfinite(c.detectable) else ""
            n = f" (n = {c.n})" if c.n else ""
            out.append([c.claim, f"{_fmt(c.value, d)}{unit}{n}", interval, c.outcome, mde, c.paper])
        return out

    HEADER = ("Claim", "Measured", "95 % interval", "Outcome", "Detectable at 80 % power", "Paper")

    def _columns(self) -> list[int]:
        cells = self.cells()
        return [k for k in range(len(self.HEADER)) if k < 4 or any(r[k] for r in cells)]

    def _repr_html_(self) -> str:
        keep, cells = self._columns(), self.cells()
        head = "".join(f"<th>{html.escape(self.HEADER[k])}</th>" for k in keep)
        body = "".join(
            f'<tr class="{r[3].replace(" ", "-")}">' + "".join(f"<td>{html.escape(r[k])}</td>" for k in keep) + "</tr>"
            for r in cells
        )
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return f'<table class="camlab-verdict"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}'

    def __repr__(self) -> str:  # the plain-text output of a notebook cell
        return str(self)

    def __str__(self) -> str:
        keep, cells = self._columns(), self.cells()
        rows = [[self.HEADER[k] for k in keep]] + [[r[k] for k in keep] for r in cells]
        widths = [max(len(r[i]) for r in rows) for i in range(len(keep))]
        lines = ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:], "", *self.notes]).rstrip()


def verdict(
    claims: Sequence[Claim], notes: Sequence[tuple[str, Mapping[str, str]]] = (), digits: int = 3
) -> Verdict:
    """A :class:`Verdict` of ``claims`` with ``notes``: each note is a sentence and the outcome it
    states for each claim it speaks of (``{label: outcome}``). The sentences are checked against
    the table — a note that names an unknown claim, states an outcome the table does not show, or
    uses an outcome word ("reproduced", "contradicted", "not separated") for no claim it names is
    an error, so a sentence cannot outlive the data it describes; at most five sentences in all.

    Raises:
        ValueError: two claims share a label, more than five sentences, or a note disagrees with
            the table.
    """
    claims = tuple(claims)
    labels = [c.label for c in claims]
    if len(set(labels)) != len(labels):
        raise ValueError(f"claim labels must differ: {', '.join(labels)}")
    by = {c.label: c for c in claims}
    n_sentences = sum(_count_sentences(text) for text, _ in notes)
    if n_sentences > 5:
        raise ValueError(f"a verdict has at most five sentences, got {n_sentences}")
    for text, says in notes:
        for label, outcome in says.items():
            if label not in by:
                raise ValueError(f"note {text!r} names claim {label!r}; claims: {', '.join(labels)}")
            if by[label].outcome != outcome:
                raise ValueError(
                    f"note {text!r} says {label!r} is {outcome!r}, but the table says {by[label].outcome!r}"
                )
        stated = set(says.values())
        words = text.lower().replace("not reproduced", "not separated")  # the same outcome, in other words
        for word in sorted({w for w in OUTCOMES if w in words} - stated):
            raise ValueError(f"note {text!r} says {word!r} of no claim it names (it names: {dict(says)})")
    return Verdict(claims, tuple(text for text, _ in notes), digits)
