"""Intervals for every number the workbook reports (SciPy does the statistics).

- :func:`mean_interval`: a mean and its 95 % bootstrap interval (``scipy.stats.bootstrap``,
  BCa, 9 999 resamples, seeded);
- :func:`paired_difference`: the mean of per-image differences to a reference, its bootstrap
  interval and the p of a sign-flip permutation test of that mean, so that the interval and the
  p (and Holm's correction of it, :func:`holm`) speak of one quantity;
- :func:`correlation_interval`: Pearson's r of paired values and its bootstrap interval;
- :func:`ratio_interval`: a ratio of two means over paired values (a speed-up) and its interval;
- :func:`ranking_agreement`: Kendall's τ between the rankings of methods by two metrics
  (``scipy.stats.kendalltau``) and its bootstrap interval over images;
- :func:`detectable_difference`: the smallest mean difference a sample of this size and spread
  detects with 80 % power — what "not separated" could have seen;
- :func:`as_number`: a value of a results CSV (text, a bool, ``""`` for not measured) as a float;
- :func:`overlap`: whether two intervals overlap — when they do, the data cannot separate the
  two means, and the workbook says so instead of naming a winner.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = [
    "Interval",
    "Difference",
    "mean_interval",
    "paired_difference",
    "ratio_interval",
    "correlation_interval",
    "ranking_agreement",
    "overlap",
    "holm",
    "detectable_difference",
    "as_number",
    "CONFIDENCE",
    "N_RESAMPLES",
]

CONFIDENCE = 0.95
N_RESAMPLES = 9999


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval, over ``n`` values."""

    mean: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} [{self.lo:.4g}, {self.hi:.4g}]"


@dataclass(frozen=True)
class Difference(Interval):
    """The mean paired difference (values − reference), its interval and its sign-flip permutation p."""

    p: float = math.nan


def as_number(v: Any) -> float:
    """A metric value as the harness's rows hold it (a float, a bool, or their CSV text; ``""``
    for not measured) → float (NaN for not measured)."""
    if v in ("True", "False"):
        return float(v == "True")
    return float(v) if v not in ("", None) else float("nan")


def _values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]


def mean_interval(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> Interval:
    """The mean of ``values`` (non-finite values left out) and its bootstrap interval.

    ``scipy.stats.bootstrap`` with the BCa method; where BCa is undefined (fewer than 3 values,
    or a distribution so lopsided that its acceleration is not finite) the percentile interval;
    where every value is the same, the interval is that value. No values: NaN throughout.
    """
    from scipy import stats

    v = _values(values)
    if v.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if v.size == 1 or float(np.ptp(v)) == 0.0:
        return Interval(mean, mean, mean, int(v.size))
    lo = hi = math.nan
    for method in ("BCa", "percentile") if v.size >= 3 else ("percentile",):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's "degenerate" warning: the percentile fallback follows
            ci = stats.bootstrap(
                (v,),
                np.mean,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                random_state=np.random.default_rng(seed),
            ).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
        if math.isfinite(lo) and math.isfinite(hi):
            break
    return Interval(mean, lo, hi, int(v.size))


def paired_difference(
    values: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Difference:
    """``values − reference``, paired image by image: its mean, bootstrap interval (as
    :func:`mean_interval`) and the two-sided p of a paired permutation test of the mean (Fisher
    1935): under the null hypothesis each difference is as likely to have either sign, so p is the
    share of sign patterns whose mean is at least as far from 0 as the observed one — all 2ⁿ
    patterns when that is at most ``n_resamples``, else ``n_resamples`` random ones (seeded) and
    p = (1 + hits) / (1 + n_resamples) (Phipson & Smyth 2010), at least 1 / (1 + n_resamples).
    It tests the mean, the quantity the interval is about — a rank test such as Wilcoxon's asks
    whether the differences are centred on 0, which for skewed per-image
    differences can disagree with the interval either way. 1.0 when every difference is 0. Pairs
    where either value is not finite are left out.

    Raises:
        ValueError: the two sequences differ in length.
    """

    a, b = np.asarray(values, dtype=float).ravel(), np.asarray(reference, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    iv = mean_interval(d, confidence, n_resamples, seed)
    if d.size == 0:
        p = math.nan
    elif not np.any(d != 0):
        p = 1.0
    else:
        p = _sign_flip_p(d, n_resamples, seed)
    return Difference(iv.mean, iv.lo, iv.hi, iv.n, p)


def _sign_flip_p(d: np.ndarray, n_resamples: int, seed: int) -> float:
    """Two-sided p of the sign-flip permutation test of ``d.mean()`` (see :func:`paired_difference`)."""
    observed = abs(float(d.mean())) * (1 - 1e-12)  # float sums of the same values in another order
    if 2**d.size <= n_resamples:  # every pattern: exact
        signs = 1 - 2 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
        return float(np.mean(np.abs(signs @ d) / d.size >= observed))
    rng, hits = np.random.default_rng(seed), 0
    for start in range(0, n_resamples, 1000):  # in blocks: 1000 × n signs at a time
        signs = np.where(rng.random((min(1000, n_resamples - start), d.size)) < 0.5, -1.0, 1.0)
        hits += int(np.sum(np.abs(signs @ d) / d.size >= observed))
    return (1 + hits) / (1 + n_resamples)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis; NaN where either side is constant."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    return np.where(np.ptp(a, -1) * np.ptp(b, -1) > 0, np.clip(r, -1.0, 1.0), math.nan)


def correlation_interval(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Pearson's r between paired values ``x[i]``, ``y[i]`` (pairs with a non-finite value left
    out) and its percentile bootstrap interval: the pairs drawn with replacement, resamples in
    which either side is constant left out. ``n`` of the result is the number of pairs.

    r is undefined — NaN throughout — when either side is constant or there are fewer than 3 pairs.
    """
    xv, yv = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xv.shape != yv.shape:
        raise ValueError(f"x and y must be paired: {xv.size} and {yv.size} values")
    keep = np.isfinite(xv) & np.isfinite(yv)
    xv, yv = xv[keep], yv[keep]
    n = int(xv.size)
    r = float(_pearson_rows(xv, yv)) if n >= 3 else math.nan
    if not math.isfinite(r):
        return Interval(math.nan, math.nan, math.nan, n)
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    draws = _pearson_rows(xv[idx], yv[idx])
    draws = draws[np.isfinite(draws)]
    lo, hi = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(r, float(lo), float(hi), n)


def ratio_interval(
    numerator: Sequence[float] | np.ndarray,
    denominator: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``mean(numerator) / mean(denominator)`` over paired values (the same images) and its
    percentile bootstrap interval, resampling the pairs together (``scipy.stats.bootstrap``
    with ``paired=True``) — e.g. how many times slower one method is than another."""
    from scipy import stats

    a, b = np.asarray(numerator, dtype=float).ravel(), np.asarray(denominator, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    ratio = float(a.mean() / b.mean())
    if a.size < 2:
        return Interval(ratio, ratio, ratio, int(a.size))
    ci = stats.bootstrap(
        (a, b),
        lambda u, v, axis=-1: u.mean(axis) / v.mean(axis),
        paired=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    return Interval(ratio, float(ci.low), float(ci.high), int(a.size))


def ranking_agreement(
    a: np.ndarray,
    b: np.ndarray,
    paired: bool = True,
    confidence: float = CONFIDENCE,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Kendall's τ (τ-b, ``scipy.stats.kendalltau``) between the rankings of M methods by two
    metrics, and its percentile bootstrap interval over the images. Means within 1e-4 of the
    spread of the means are tied.

    Args:
        a, b: M×N per-image values of the two metrics (one row per method, in the same order),
            each oriented so that higher is better; a method's score is its mean over the images.
        paired: the columns of ``a`` and ``b`` are the same images (resampled together); else
            each is resampled on its own (e.g. a metric measured on other units, such as tiles).
    Returns:
        τ on all images, the interval, and ``n`` = the images of ``a``.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must be M×N matrices with one row per method, got shapes {a.shape} and {b.shape}")
    if paired and a.shape != b.shape:
        raise ValueError(f"paired metrics need the same images, got {a.shape[1]} and {b.shape[1]}")

    def tied(means: np.ndarray) -> np.ndarray:
        # methods whose means differ by less than 1e-4 of the spread are one rank (τ-b counts them
        # as ties): identical maps (Grad-CAM, XGrad-CAM and CAM at a layer before pooling) would
        # otherwise be ordered by float rounding, differently for every metric and resample
        spread = float(np.ptp(means))
        return np.zeros_like(means) if spread == 0 else np.round((means - means.min()) / spread / 1e-4)

    def tau(u: np.ndarray, v: np.ndarray) -> float:
        t = stats.kendalltau(tied(np.nanmean(u, axis=1)), tied(np.nanmean(v, axis=1))).statistic
        return float(t) if np.isfinite(t) else 0.0  # a metric that ties every method ranks nothing

    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        i = rng.integers(0, a.shape[1], a.shape[1])
        j = i if paired else rng.integers(0, b.shape[1], b.shape[1])
        draws.append(tau(a[:, i], b[:, j]))
    lo, hi = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(tau(a, b), float(lo), float(hi), int(a.shape[1]))


def overlap(a: Interval, b: Interval) -> bool:
    """Whether two intervals share any value (then the data cannot separate the two means)."""
    return a.lo <= b.hi and b.lo <= a.hi


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of ``pvalues`` for testing them together: the k-th
    smallest p becomes max over j ≤ k of min(1, (m − j + 1) · p_(j)). A hypothesis is rejected at
    level a when its adjusted p is ≤ a; the family-wise error rate stays ≤ a. NaN stays NaN.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(p.shape, np.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(round(v, 12)) for v in out]


def detectable_difference(
    values: Sequence[float] | np.ndarray, power: float = 0.8, confidence: float = CONFIDENCE
) -> float:
    """The smallest true mean of ``values`` (per-image paired differences, say; non-finite values
    left out) that a two-sided test at level ``1 − confidence`` detects with probability
    ``power``, given their spread: ``(t₁₋α/₂ + t_power) · s / √n`` with Student's t on n − 1
    degrees of freedom (Cohen 1988, the one-sample case) and ``s`` the sample standard deviation.
    A comparison reported as not separated could have seen a difference this large; a smaller
    one it could not. 200 images with a per-image SD of 20 points detect about 4 points.

    NaN for fewer than 2 values; 0 when every value is the same.

    Raises:
        ValueError: ``power`` or ``confidence`` outside (0, 1).
    """
    from scipy import stats

    for name, v in (("power", power), ("confidence", confidence)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {v}")
    v = _values(values)
    if v.size < 2:
        return math.nan
    df = v.size - 1
    t = stats.t.ppf(1 - (1 - confidence) / 2, df) + stats.t.ppf(power, df)
    return float(t * v.std(ddof=1) / math.sqrt(v.size))
