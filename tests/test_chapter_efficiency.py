"""camlab.book.chapters.efficiency: the committed timing run, the live comparison and the figures
on toy rows, the timing helpers on a toy method, and the chapter's verdict on the committed CSV,
one claim recomputed independently."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from camlab.book.chapters import efficiency as E
from camlab.evaluation.stats import paired_difference, ratio_interval

COMMITTED = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def toy_rows():
    rows = []
    for i in range(6):
        for m, sec, full, part in (("clustercam", 1.0, 11, 0), ("gradcam", 0.1, 1, 0), ("ablationcam", 0.4, 1, 500)):
            rows.append({"method": m, "image": f"im{i}", "seconds": sec * (1 + 0.05 * i), "full_passes": full,
                         "partial_passes": part})  # fmt: skip
    return rows


def test_compare_live_counts_ratios_inside_the_committed_interval():
    committed = toy_rows()
    live = [dict(r) for r in committed if r["image"] in ("im0", "im1")]
    table, inside, compared = E.compare_live(live, committed)
    assert compared == 2
    assert inside == 2
    assert "1 + 500 partial" in table
    assert len(table.splitlines()) == 4


def test_ratio_claim_outcomes():
    fast, slow = np.linspace(1, 2, 10), 3 * np.linspace(1, 2, 10)
    assert E.ratio_claim("x", "slow takes longer", slow, fast).outcome == "reproduced"
    assert E.ratio_claim("x", "fast takes longer", fast, slow).outcome == "contradicted"
    rng = np.random.default_rng(0)
    noisy = fast * np.exp(rng.normal(0, 0.3, 10))
    c = E.ratio_claim("x", "noise", noisy, fast)
    assert c.outcome == "not separated"
    assert c.detectable > 1
    assert c.unit == "×"


def test_measure_and_layer_costs_with_a_toy_method(monkeypatch):
    class Toy:
        def __init__(self, clf, layer, **kw):
            self.layer = layer

        def __call__(self, x):
            return SimpleNamespace(passes=(1, 3 if self.layer == "b" else 0))

    monkeypatch.setitem(__import__("camlab").METHODS, "toycam", Toy)
    images = [SimpleNamespace(name="one"), SimpleNamespace(name="two")]
    rows = E.measure(None, "toycam", "a", images, [0, 1], repeats=1)
    assert [(r["image"], r["full_passes"], r["partial_passes"]) for r in rows] == [("one", 1, 0), ("two", 1, 0)]
    result = {"layers": ["a", "b"], "channels": {"a": 4, "b": 8},
              "costs": {"toycam": [{"seconds": 0.1, "full": 1, "partial": 0},
                                   {"seconds": 0.2, "full": 1, "partial": 3}]}}  # fmt: skip
    assert "×4.00, ×2.00" in E.layer_table(result)
    fig = E.channel_figure(result, "toy")
    assert [ax.get_ylabel() for ax in fig.axes] == ["seconds per image", "forward passes per image"]
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert labels == ["toycam: full passes", "toycam: partial passes (tail only)"]  # every series explained
    assert fig.axes[1].get_ylim()[0] < 1  # a one-pass bar is visible on the log axis
    plt.close("all")


def test_q_figure():
    masked = {q: {"batched": [0.1 * q, 0.11 * q], "single": [0.12 * q, 0.13 * q]} for q in (2, 6)}
    fig = E.q_figure({2: 0.3, 6: 0.8}, masked)
    ax = fig.axes[0]
    assert ax.get_xlabel()
    assert ax.get_ylabel()
    assert len(ax.get_legend_handles_labels()[1]) == 3
    plt.close("all")


def test_verdict_on_the_committed_csv():
    v = E.verdict(COMMITTED)
    assert [c.label for c in v.claims] == ["scorecam", "scorecam, defaults", "ablationcam", "gradcam",
                                           "passes scorecam", "passes ablationcam", "passes at Q = 6"]  # fmt: skip
    assert v["scorecam"].outcome == "reproduced"
    assert v["ablationcam"].outcome == "contradicted"
    assert v["passes at Q = 6"].value == 7
    assert math.isnan(v["passes at Q = 6"].lo)
    assert 1 <= len(v.notes) <= 5
    # independent recomputation: Score-CAM over Cluster-CAM at the paper's setting, paired per image
    rows = E.load(COMMITTED)
    sec = {
        m: {r["image"]: float(r["seconds"]) for r in rows if r["method"] == m} for m in ("scorecam", E.PAPER_SETTING)
    }
    images = sorted(sec["scorecam"])
    iv = ratio_interval([sec["scorecam"][i] for i in images], [sec[E.PAPER_SETTING][i] for i in images])
    assert v["scorecam"].value == pytest.approx(iv.mean)
    assert v["scorecam"].lo == pytest.approx(iv.lo)
    d = paired_difference(
        np.log([sec["scorecam"][i] for i in images]), np.log([sec[E.PAPER_SETTING][i] for i in images])
    )
    assert d.lo > 0
    assert v["scorecam"].lo > 1
