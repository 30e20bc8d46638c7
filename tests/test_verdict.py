"""camlab.book.verdict: aliases found from the rows, better/worse/tied from paired intervals."""

import numpy as np
import pytest

from camlab.book import verdict as V


def rows_for(values):
    methods = list(values)
    n = len(next(iter(values.values()))["drop"])
    return [
        {"image": f"i{k}", "method": m, **{x: str(values[m][x][k]) for x in values[m]}}
        for k in range(n)
        for m in methods
    ]


def test_aliases_and_the_direction_of_better():
    rng = np.random.default_rng(0)
    a = {"drop": rng.random(40) * 0.5, "gain": rng.random(40) * 0.1}
    rows = rows_for(
        {
            "gradcam": a,
            "xgradcam": {k: v + 1e-9 for k, v in a.items()},
            "better": {"drop": a["drop"] - 0.2, "gain": a["gain"] + 0.3},
            "noise": {"drop": a["drop"] + rng.normal(0, 0.01, 40), "gain": a["gain"]},
        }
    )
    kept, aliases = V.distinct_methods(rows, ["drop", "gain"])
    assert kept == ["gradcam", "better", "noise"]
    assert aliases == {"xgradcam": "gradcam"}
    c = V.compare(rows, "better", "gradcam", ["drop", "gain"])
    assert c.better == ["drop", "gain"]
    assert not c.worse
    assert c.n_images == 40
    assert c.differences["drop"].mean == pytest.approx(-0.2)
    w = V.compare(rows, "gradcam", "better", ["drop", "gain"])
    assert w.worse == ["drop", "gain"]
    t = V.compare(rows, "noise", "gradcam", ["gain"])  # the same gain on every image
    assert t.tied == ["gain"]
    assert "better on drop -20 [" in c.describe({"drop": 100})
    with pytest.raises(ValueError, match="no rows for method 'scorecam'"):
        V.compare(rows, "scorecam", "gradcam", ["drop"])
    with pytest.raises(ValueError, match="no better direction"):
        V.compare(rows, "better", "gradcam", ["coverage"])


def test_a_tolerance_for_maps_equal_by_construction():
    """Float rounding moved through a thresholding metric: a few 1e-4 apart, aliased only with atol."""
    rng = np.random.default_rng(1)
    a = {"drop": rng.random(30) * 0.5, "drop_top20": rng.random(30)}
    rounded = {"drop": a["drop"] + 1e-6, "drop_top20": a["drop_top20"] + np.where(np.arange(30) == 3, 5.7e-4, 0.0)}
    other = {"drop": a["drop"] + rng.normal(0, 0.05, 30), "drop_top20": a["drop_top20"]}
    rows = rows_for({"gradcam": a, "xgradcam": rounded, "other": other})
    assert V.distinct_methods(rows, ["drop", "drop_top20"])[1] == {}  # the defaults keep them apart
    kept, aliases = V.distinct_methods(rows, ["drop", "drop_top20"], atol=1e-3)
    assert kept == ["gradcam", "other"]
    assert aliases == {"xgradcam": "gradcam"}
    assert V.largest_difference(rows, "xgradcam", "gradcam", ["drop", "drop_top20"]) == pytest.approx(5.7e-4, rel=1e-3)
    assert V.largest_difference(rows, "other", "gradcam", ["drop"]) > 0.05
    with pytest.raises(ValueError, match="no rows for method 'scorecam'"):
        V.largest_difference(rows, "scorecam", "gradcam", ["drop"])


def test_counted_once_and_ranked_by_mean():
    """Every metric the rows have decides the twins (1e-3 apart at most); the ranking follows each
    metric's direction, worked out by hand."""
    rng = np.random.default_rng(3)
    a = {"drop": rng.random(20) * 0.5, "insertion": rng.random(20), "coverage": rng.random(20)}
    rows = rows_for(
        {
            "gradcam": a,
            "cam": {k: v + 5e-4 for k, v in a.items()},
            "lower": {**a, "drop": a["drop"] - 0.1, "insertion": a["insertion"] - 0.1},
            "cover": {**a, "coverage": a["coverage"] + 0.5},  # differs only in a metric that ranks nothing
        }
    )
    kept, aliases = V.counted_once(rows)
    assert kept == ["gradcam", "lower", "cover"]
    assert aliases == {"cam": "gradcam"}
    assert V.largest_difference(rows, "cam", "gradcam") == pytest.approx(5e-4)  # every metric the rows have
    assert V.largest_difference(rows, "cover", "gradcam") == pytest.approx(0.5)
    assert V.rank_by_mean(rows, "drop", ["gradcam", "lower"]) == ["lower", "gradcam"]  # lower drop is better
    assert V.rank_by_mean(rows, "insertion", ["lower", "gradcam"]) == ["gradcam", "lower"]  # higher is better
    with pytest.raises(ValueError, match="no better direction"):
        V.rank_by_mean(rows, "coverage", kept)
    with pytest.raises(ValueError, match="no rows for 'scorecam'"):
        V.rank_by_mean(rows, "drop", ["scorecam"])


def test_a_claim_is_reproduced_contradicted_or_not_separated():
    """Better on every metric: reproduced; worse on one: contradicted; else not separated."""
    rng = np.random.default_rng(2)
    a = {"drop": rng.random(40) * 0.5, "increase": rng.random(40)}
    noise = rng.normal(0, 0.01, 40)
    rows = rows_for(
        {
            "ref": a,
            "good": {"drop": a["drop"] - 0.2, "increase": a["increase"] + 0.3},
            "half": {"drop": a["drop"] - 0.2, "increase": a["increase"] + noise - noise.mean()},
            "bad": {"drop": a["drop"] + 0.2, "increase": a["increase"] + 0.3},
        }
    )
    assert V.claim(V.compare(rows, "good", "ref", ["drop", "increase"])) == "reproduced"
    assert V.claim(V.compare(rows, "half", "ref", ["drop", "increase"])) == "not separated"
    assert V.claim(V.compare(rows, "half", "ref", ["drop", "increase"]), ["drop"]) == "reproduced"
    assert (
        V.claim(V.compare(rows, "bad", "ref", ["drop", "increase"])) == "contradicted"
    )  # better on increase, worse on drop
    with pytest.raises(ValueError, match="not compared: deletion"):
        V.claim(V.compare(rows, "good", "ref", ["drop"]), ["deletion"])


def test_claims_take_their_outcome_and_power_from_the_interval():
    rng = np.random.default_rng(1)
    ref = rng.normal(0.5, 0.1, 200)
    better = V.paired_claim("b", "x above y", ref + 0.05 + rng.normal(0, 0.05, 200), ref, scale=100, unit="points")
    assert better.outcome == "reproduced"
    assert np.isnan(better.detectable)
    assert better.value == pytest.approx(5, abs=1.5)
    assert better.unit == "points"
    worse = V.paired_claim("w", "x above y", ref - 0.05 + rng.normal(0, 0.05, 200), ref)
    assert worse.outcome == "contradicted"
    tied = V.paired_claim("t", "x above y", ref + rng.normal(0, 0.2, 200), ref, scale=100)
    assert tied.outcome == "not separated"
    # 200 values of SD 20 points: (1.97 + 0.84) · 20 / √200 ≈ 4 points
    assert tied.detectable == pytest.approx(2.81 * 20 / np.sqrt(200), rel=0.15)
    below = V.mean_claim("r", "|ρ| below 0.5", np.full(10, 0.3) + rng.normal(0, 0.01, 10), 0.5, expect=-1)
    assert below.outcome == "reproduced"
    with pytest.raises(ValueError, match="expect"):
        V.mean_claim("r", "c", [1.0, 2.0], expect=0)


def test_rows_claim_follows_the_better_direction():
    rng = np.random.default_rng(0)
    a = {"drop": rng.random(40) * 0.5, "gain": rng.random(40) * 0.1}
    rows = rows_for({"ref": a, "new": {"drop": a["drop"] - 0.2, "gain": a["gain"] - 0.05}})
    assert V.rows_claim(rows, "new", "ref", "drop", "lower drop").outcome == "reproduced"  # lower is better
    c = V.rows_claim(rows, "new", "ref", "gain", "higher gain")
    assert c.outcome == "contradicted"
    assert c.label == "gain: new vs ref"
    with pytest.raises(ValueError, match="methods: ref, new"):
        V.rows_claim(rows, "old", "ref", "drop", "c")


def test_a_verdict_checks_its_sentences_against_the_table():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, 100)
    tied = V.paired_claim("tied", "a beats b", ref + rng.normal(0, 1, 100), ref)
    exact = V.exact_claim("same", "CAM equals Grad-CAM", 3e-7, holds=True, n=8)
    v = V.verdict([tied, exact], notes=[("a and b are not separated.", {"tied": "not separated"})])
    assert v["same"].outcome == "reproduced"
    html = v._repr_html_()
    assert html.count("<tr") == 3
    assert "camlab-verdict" in html
    assert "a and b are not separated." in html
    text = str(v)
    assert "not separated" in text
    assert "≥ " in text
    assert "—" in text  # the exact claim has no interval
    with pytest.raises(ValueError, match="the table says 'not separated'"):
        V.verdict([tied], notes=[("a beats b: reproduced.", {"tied": "reproduced"})])
    with pytest.raises(ValueError, match="of no claim it names"):
        V.verdict([tied, exact], notes=[("Everything was reproduced.", {})])
    with pytest.raises(ValueError, match="names claim 'other'"):
        V.verdict([tied], notes=[("x.", {"other": "reproduced"})])
    with pytest.raises(ValueError, match="at most five sentences, got 6"):
        V.verdict([tied], notes=[("One. Two. Three.", {}), ("Four. Five. Six.", {})])
    with pytest.raises(ValueError, match="labels must differ"):
        V.verdict([tied, tied])
    # "not reproduced" is the not-separated outcome in other words, and numbers' points end no sentence
    V.verdict([tied], notes=[("Not reproduced at 0.5 points: the sample detects ≥ 0.3.", {"tied": "not separated"})])
    with pytest.raises(ValueError, match="outcome 'maybe'"):
        V.Claim("x", "c", 1.0, 0.0, 2.0, "maybe")
