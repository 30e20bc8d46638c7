"""Kendall's τ between metric rankings, against SciPy, on rows shaped like the harness's."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from camlab.evaluation import agreement as A
from camlab.evaluation import stats


def rows_for(values: dict[str, dict[str, np.ndarray]]):
    """values[metric][method] = per-image array → the harness's rows (strings, as from a CSV)."""
    methods = list(next(iter(values.values())))
    n = len(next(iter(values.values()))[methods[0]])
    return [
        {"image": f"img{i:03d}", "method": m, **{k: str(v[m][i]) for k, v in values.items()}}
        for i in range(n)
        for m in methods
    ]


def test_tau_equals_scipy_on_the_means_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 40)) + np.arange(5)[:, None]
    b = a + rng.normal(scale=2.0, size=a.shape)
    iv = stats.ranking_agreement(a, b, n_resamples=500)
    assert iv.mean == pytest.approx(kendalltau(a.mean(1), b.mean(1)).statistic)
    assert iv.lo <= iv.mean <= iv.hi
    assert iv.n == 40
    same = stats.ranking_agreement(a, a, n_resamples=200)
    assert (same.mean, same.lo, same.hi) == pytest.approx((1.0, 1.0, 1.0))
    assert stats.ranking_agreement(a, -a, n_resamples=200).mean == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same images"):
        stats.ranking_agreement(a, b[:, :10])


def test_lower_is_better_metrics_are_turned_around():
    """Drop (lower is better) and gain (higher is better) that order the methods the same way
    agree with τ = 1 once drop is negated."""
    rng = np.random.default_rng(1)
    quality = {"m1": 0.1, "m2": 0.5, "m3": 0.9}
    drop = {m: 1 - q + 0.01 * rng.normal(size=30) for m, q in quality.items()}
    gain = {m: q + 0.01 * rng.normal(size=30) for m, q in quality.items()}
    rows = rows_for({"drop": drop, "gain": gain})
    mat = A.per_image_matrix(rows, "drop", ["m1", "m2", "m3"])
    assert np.allclose(mat, -np.stack([drop[m] for m in ("m1", "m2", "m3")]))
    (pair,) = A.metric_agreement(rows, ["drop", "gain"], n_resamples=200)
    assert (pair["a"], pair["b"], pair["n"]) == ("drop", "gain", 30)
    assert pair["tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no better direction"):
        A.per_image_matrix(rows, "coverage", ["m1"])


def test_pointing_rows_join_by_tile():
    rng = np.random.default_rng(2)
    methods = ["m1", "m2", "m3"]
    rows = rows_for({"gain": {m: k + 0.1 * rng.normal(size=10) for k, m in enumerate(methods)}})
    tiles = [
        {"composite": str(c), "class_index": str(t), "method": m, "mass_inside": str(0.2 * k + 0.01 * rng.random())}
        for c in range(8)
        for t in (1, 2)
        for k, m in enumerate(methods)
    ]
    (pair,) = A.metric_agreement(rows, ["gain", "pointing"], pointing_rows=tiles, n_resamples=200)
    assert pair["tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs pointing_rows"):
        A.metric_agreement(rows, ["gain", "pointing"])


def test_methods_with_the_same_values_are_tied_not_ordered_by_rounding():
    """Two methods whose per-image values differ only by float rounding (Grad-CAM and XGrad-CAM
    at bn2) are one rank, so they cannot disagree between metrics."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3, 50)) + np.array([0.0, 1.0, 2.0])[:, None]
    a = np.vstack([base, base[:1] + 1e-9])
    b = np.vstack([base, base[:1] - 1e-9])  # the twin ordered the other way round by rounding
    assert stats.ranking_agreement(a, b, n_resamples=200).mean == pytest.approx(1.0)
