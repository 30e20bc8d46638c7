"""Chapter 01 (vanilla CAM): eqs 1–2 by hand, two classes on one scale, and the verdict."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camlab.book.chapters import vanilla
from camlab.evaluation.harness import read_results
from camlab.evaluation.stats import as_number, paired_difference

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _photo(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))


def test_by_hand_reproduces_camlab_and_the_logit(lite0):
    torch.manual_seed(0)
    check = vanilla.by_hand(lite0, torch.randn(2, 3, 224, 224))
    assert check.shape == (1280, 7, 7)
    assert check.n_images == 2
    assert check.eq2_gap <= vanilla.EXACT
    assert check.map_gap <= vanilla.EXACT
    assert check.z_gap <= 1e-5  # a positive factor does not survive min–max scaling


def test_class_pairs_share_one_scale_and_report_ranks(lite0):
    photos = {"a": _photo(0), "b": _photo(1)}
    pm = vanilla.class_pairs(lite0, photos, {"a": ["bull mastiff", "tabby"]}, also={"a": ["tiger cat"]})
    assert pm.names == ["a", "b"]
    assert pm.first.shape == pm.second.shape == (2, 224, 224)
    peaks = torch.maximum(pm.first.flatten(1).amax(1), pm.second.flatten(1).amax(1))
    assert torch.allclose(peaks[peaks > 0], torch.ones_like(peaks[peaks > 0]))  # the larger peak of a photo is 1
    assert {("a", "bull mastiff"), ("a", "tabby"), ("a", "tiger cat")} <= set(pm.rank)
    assert all(1 <= v <= 1000 for v in pm.rank.values())
    assert "tabby" in pm.captions[0]
    assert len(pm.captions[1].split("\n")) == 3
    assert all(-1 <= r <= 1 for r in pm.correlation)
    fig = vanilla.pair_figure(lite0, pm)
    assert len(fig.axes) == 2 * 3 + 1  # photo, two maps, one colour bar
    with pytest.raises(ValueError, match="two classes"):
        vanilla.class_pairs(lite0, photos, {"a": ["tabby"]})


def test_verdict_on_the_committed_table1_run():
    check = vanilla.HandCheck(eq2_gap=1e-6, map_gap=2e-6, z_gap=3e-7, shape=(1280, 7, 7), n_images=4)
    v = vanilla.verdict(check, RESULTS, "efficientnet_lite0")
    assert [c.label for c in v.claims] == ["eq 2", "eq 1", "1/Z", "CAM = Grad-CAM"]
    assert {c.outcome for c in v.claims} == {"reproduced"}
    assert v["CAM = Grad-CAM"].n == 200
    assert len(v.notes) == 3
    # independently: CAM − Grad-CAM on the drop, paired over the images, is 0 to the CSV's rounding
    rows = read_results(RESULTS / "table1v2_efficientnet_lite0.csv")
    by = {m: {r["image"]: as_number(r["drop"]) for r in rows if r["method"] == m} for m in ("cam", "gradcam")}
    images = sorted(by["cam"])
    d = paired_difference([by["cam"][i] for i in images], [by["gradcam"][i] for i in images])
    assert max(abs(d.lo), abs(d.hi), abs(d.mean)) <= vanilla.METRIC_ROUNDING
    assert "<table" in v._repr_html_()


def test_verdict_without_a_committed_run_and_with_a_failed_check():
    check = vanilla.HandCheck(eq2_gap=0.0, map_gap=0.0, z_gap=0.0, shape=(8, 2, 2), n_images=1)
    assert len(vanilla.verdict(check, None, "efficientnet_lite0").claims) == 3
    broken = vanilla.HandCheck(eq2_gap=1.0, map_gap=0.0, z_gap=0.0, shape=(8, 2, 2), n_images=1)
    with pytest.raises(ValueError, match="table says 'contradicted'"):  # a sentence cannot outlive its data
        vanilla.verdict(broken, None, "efficientnet_lite0")
