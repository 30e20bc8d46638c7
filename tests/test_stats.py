"""Intervals: camlab.evaluation.stats against SciPy on the same values, and the harness's summary."""

import math

import numpy as np
import pytest
from scipy import stats as ss

from camlab.evaluation import harness as E
from camlab.evaluation import stats as S


def scipy_interval(values, method="BCa"):
    ci = ss.bootstrap(
        (np.asarray(values, float),),
        np.mean,
        confidence_level=0.95,
        n_resamples=S.N_RESAMPLES,
        method=method,
        random_state=np.random.default_rng(0),
    ).confidence_interval
    return ci.low, ci.high


def test_mean_interval_is_scipys_bootstrap():
    v = np.random.default_rng(1).gamma(2.0, 0.1, size=60)
    iv = S.mean_interval(v)
    assert iv.mean == pytest.approx(v.mean())
    assert iv.n == 60
    assert (iv.lo, iv.hi) == pytest.approx(scipy_interval(v))
    assert iv.lo < v.mean() < iv.hi
    # more values, narrower interval
    wide = S.mean_interval(v[:15])
    assert wide.hi - wide.lo > iv.hi - iv.lo


def test_mean_interval_edge_cases():
    assert S.mean_interval([0.3, 0.3, 0.3]) == S.Interval(0.3, 0.3, 0.3, 3)
    assert S.mean_interval([0.5, float("nan")]) == S.Interval(0.5, 0.5, 0.5, 1)  # NaN left out
    empty = S.mean_interval([])
    assert math.isnan(empty.mean)
    assert empty.n == 0
    two = S.mean_interval([0.0, 1.0])  # BCa undefined: percentile
    assert (two.lo, two.hi) == pytest.approx(scipy_interval([0.0, 1.0], "percentile"))
    # a share of booleans (the increase column): finite interval inside [0, 1]
    inc = S.mean_interval([1] * 3 + [0] * 37)
    assert 0 <= inc.lo < 3 / 40 < inc.hi <= 1


def test_paired_p_is_an_exact_sign_flip_test_of_the_mean():
    """With 2ⁿ ≤ n_resamples every sign pattern is enumerated: p is the share whose mean is at least as
    far from 0 as the observed mean (computed here by hand); an outlier pulls the mean and the p with it."""
    import itertools

    d = np.array([0.3, 0.2, 0.25, 0.1, 0.15, -0.05, 0.05, 0.2, -0.02, 0.1])
    signs = np.array(list(itertools.product([1, -1], repeat=d.size)))
    by_hand = float(np.mean(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12))
    ours = S.paired_difference(d, np.zeros_like(d))
    assert ours.p == pytest.approx(by_hand)
    assert ours.p < 0.05
    d[0] = -3.0  # one large negative difference: the mean is no longer clearly away from 0
    assert S.paired_difference(d, np.zeros_like(d)).p > 0.5


def test_paired_difference_matches_scipy():
    rng = np.random.default_rng(2)
    ref = rng.uniform(0, 1, 50)
    val = ref - 0.05 + rng.normal(0, 0.02, 50)
    d = S.paired_difference(val, ref)
    assert d.mean == pytest.approx(float(np.mean(val - ref)))
    assert (d.lo, d.hi) == pytest.approx(scipy_interval(val - ref))
    assert d.hi < 0
    # every one of the 9 999 random sign patterns has a mean nearer 0: the smallest p such a test gives
    assert d.p == pytest.approx(1 / (S.N_RESAMPLES + 1))
    same = S.paired_difference(ref, ref)
    assert (same.mean, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="equal lengths, got 3 and 2"):
        S.paired_difference([1, 2, 3], [1, 2])


def test_overlap():
    assert S.overlap(S.Interval(0.5, 0.4, 0.6, 9), S.Interval(0.65, 0.59, 0.7, 9))
    assert not S.overlap(S.Interval(0.5, 0.4, 0.6, 9), S.Interval(0.7, 0.61, 0.8, 9))


def test_summarize_columns_and_values():
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.1, 0.9, 30)
    rows = []
    for i, r in enumerate(ref):
        rows.append(
            {
                "image": f"im{i}",
                "method": "gradcam",
                "drop": f"{r:.6g}",
                "increase": "0",
                "n_forward": "1",
                "seconds": "0.01",
            }
        )
        rows.append(
            {
                "image": f"im{i}",
                "method": "clustercam",
                "drop": f"{r * 0.8:.6g}",
                "increase": str(i % 2),
                "n_forward": "9",
                "seconds": "0.05",
            }
        )
    rows.append(
        {"image": "extra", "method": "clustercam", "drop": "0.5", "increase": "1", "n_forward": "9", "seconds": "0.05"}
    )  # no reference row: not paired
    table = E.summarize(rows, reference="gradcam", skipped={"bad.JPEG": "cannot read"})
    by = {r["method"]: r for r in table}
    cc = by["clustercam"]
    values = [float(r["drop"]) for r in rows if r["method"] == "clustercam"]
    assert cc["images"] == 31
    assert cc["n_forward"] == 9
    assert cc["skipped"] == 1
    assert (cc["drop"], cc["drop_lo"], cc["drop_hi"]) == pytest.approx((np.mean(values), *scipy_interval(values)))
    paired = np.array([float(r["drop"]) for r in rows if r["method"] == "clustercam"][:30]) - np.array(
        [float(f"{r:.6g}") for r in ref]
    )
    assert (cc["drop_diff"], cc["drop_diff_lo"], cc["drop_diff_hi"]) == pytest.approx(
        (paired.mean(), *scipy_interval(paired))
    )
    # SciPy's permutation test draws other random sign patterns: the same p up to Monte Carlo error
    sign_flip = ss.permutation_test(
        (paired,), np.mean, permutation_type="samples", n_resamples=S.N_RESAMPLES, random_state=0
    )
    assert cc["drop_p"] == pytest.approx(sign_flip.pvalue, abs=0.02)
    assert cc["increase"] == pytest.approx(16 / 31)
    assert by["gradcam"]["drop_diff"] == 0
    assert by["gradcam"]["drop_p"] == 1.0
    assert "insertion" not in cc  # not measured: no column
    text = E.format_table(table)
    assert f"{100 * cc['drop']:.1f} [{100 * cc['drop_lo']:.1f}, {100 * cc['drop_hi']:.1f}]" in text
    assert "1 unreadable image(s) skipped" in text
    with pytest.raises(ValueError, match="reference method 'scorecam' has no rows"):
        E.summarize(rows, reference="scorecam")


def test_ratio_interval_is_scipys_paired_bootstrap():
    rng = np.random.default_rng(4)
    slow = rng.uniform(1.8, 2.2, 40)
    fast = slow / 10 * rng.uniform(0.9, 1.1, 40)
    iv = S.ratio_interval(slow, fast)
    assert iv.mean == pytest.approx(slow.mean() / fast.mean())
    ci = ss.bootstrap(
        (slow, fast),
        lambda u, v, axis=-1: u.mean(axis) / v.mean(axis),
        paired=True,
        n_resamples=S.N_RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval
    assert (iv.lo, iv.hi) == pytest.approx((ci.low, ci.high))
    assert 9 < iv.lo < iv.mean < iv.hi < 11


def test_correlation_interval_against_scipy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=80)
    y = 0.6 * x + 0.8 * rng.normal(size=80)
    iv = S.correlation_interval(x, y, n_resamples=4000)
    assert iv.mean == pytest.approx(ss.pearsonr(x, y).statistic)
    assert iv.n == 80
    ci = ss.bootstrap(
        (x, y),
        lambda u, v, axis=-1: np.array(
            [ss.pearsonr(a, b).statistic for a, b in zip(np.atleast_2d(u), np.atleast_2d(v), strict=True)]
        ).squeeze(),
        paired=True,
        n_resamples=4000,
        method="percentile",
        random_state=np.random.default_rng(1),
    ).confidence_interval
    assert (iv.lo, iv.hi) == pytest.approx((ci.low, ci.high), abs=0.03)  # other draws, the same interval
    assert iv.lo < iv.mean < iv.hi
    assert S.correlation_interval(x, y, n_resamples=4000) == iv  # seeded
    # the sign follows the relation; pairs with a NaN are left out
    assert S.correlation_interval(x, -y).mean == pytest.approx(-iv.mean)
    assert S.correlation_interval([*x, np.nan], [*y, 1.0]) == S.correlation_interval(x, y)
    # undefined: a constant side, or fewer than 3 pairs
    assert math.isnan(S.correlation_interval(x, np.ones(80)).mean)
    assert math.isnan(S.correlation_interval([1, 2], [3, 5]).lo)
    with pytest.raises(ValueError, match="paired: 3 and 2"):
        S.correlation_interval([1, 2, 3], [1, 2])


def test_holm_adjustment():
    from camlab.evaluation.stats import holm

    # by hand: sorted 0.01, 0.03, 0.04 → 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5]) == [0.5]
    adjusted = holm([0.2, float("nan"), 0.001, 0.9])
    assert math.isnan(adjusted[1])
    assert adjusted[2] == 0.003
    assert adjusted[0] == 0.4
    assert adjusted[3] == 0.9
    assert holm([0.6, 0.7]) == [1.0, 1.0]


def test_detectable_difference_has_its_power_in_simulation():
    """A true mean difference of detectable_difference(sample) is found (two-sided t-test at 5 %)
    in about 80 % of samples of that size and spread, and half of it in far fewer."""
    rng = np.random.default_rng(0)
    n, sd = 50, 3.0
    # a sample whose SD is exactly 3, so that the simulation checks the formula, not one sample's SD
    spread = np.resize([-1.0, 1.0], n) * sd * np.sqrt((n - 1) / n)
    delta = S.detectable_difference(spread)
    assert delta == pytest.approx((ss.t.ppf(0.975, n - 1) + ss.t.ppf(0.8, n - 1)) * sd / np.sqrt(n))
    power = np.mean(ss.ttest_1samp(rng.normal(delta, sd, (4000, n)), 0, axis=1).pvalue < 0.05)
    assert power == pytest.approx(0.8, abs=0.03)
    half = np.mean(ss.ttest_1samp(rng.normal(delta / 2, sd, (4000, n)), 0, axis=1).pvalue < 0.05)
    assert half < 0.4
    assert np.isnan(S.detectable_difference([1.0]))
    assert S.detectable_difference([2.0, 2.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match="power must lie in"):
        S.detectable_difference([1.0, 2.0], power=1.0)
