"""Notebook 07's chapter module: the Table 1 verdict from the committed CSVs, its tables and figures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch

from camlab.book.chapters import table1
from camlab.book.verdict import Verdict
from camlab.evaluation.harness import read_results
from camlab.evaluation.stats import as_number, paired_difference

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(scope="module")
def v() -> Verdict:
    return table1.verdict(RESULTS)


def test_name_reads_methods_and_variants():
    assert table1.name("gradcampp") == "Grad-CAM++"
    kmeans = "clustercam:alpha=0.8;clustering=kmeans;coupling=normalized;n_clusters=8"
    assert table1.name(kmeans) == "Cluster-CAM (kmeans, Q = 8)"
    assert table1.name("unknown") == "unknown"


def test_load_gives_the_run_and_its_pointing_tiles():
    rows, tiles = table1.load(RESULTS, "efficientnet_lite0")
    assert len({r["image"] for r in rows}) == 200
    assert {"image", "method", "pointing"} == set(tiles[0])
    assert len({t["image"] for t in tiles if t["method"] == "clustercam"}) == 185


def test_verdict_has_every_claim_on_both_networks(v):
    assert isinstance(v, Verdict)
    n = len(table1.NETWORKS) * len(table1.VERDICT_METRICS) * len(table1.BASELINES)
    assert len(v.claims) == n == 72
    assert 1 <= len(v.notes) <= 5
    for c in v.claims:
        assert "Cluster-CAM" in c.claim
        assert c.n >= 179
        assert (c.outcome == "not separated") == (c.detectable == c.detectable)  # detectable only when not separated
    # short claims in a fixed order: network, who claims it, metric, the comparison (twins counted once)
    assert v["lite0 drop vs gradcam"].claim == "lite0 · paper Table 1: drop (clipped) ↓, Cluster-CAM < Grad-CAM"
    assert v["lite0 road vs scorecam"].claim.startswith("lite0 · extends Table 1: ROAD ↑, Cluster-CAM > Score-CAM")
    assert max(len(c.claim) for c in v.claims) <= 80
    nets = [c.label.split()[0] for c in v.claims]
    assert nets == sorted(nets)  # lite0's rows, then lite2's
    assert v["lite2 drop vs gradcam"].paper.startswith("-6.34")
    assert v["lite0 gain vs gradcam"].paper == ""
    assert v["lite0 drop vs gradcam"].unit == "points"
    assert v["lite0 road vs gradcam"].unit == ""


@pytest.mark.parametrize(
    ("network", "metric", "reference", "scale"),
    [("efficientnet_lite2", "drop", "gradcam", 100), ("efficientnet_lite0", "deletion", "scorecam", 1)],
)
def test_verdict_matches_an_independent_recomputation(v, network, metric, reference, scale):
    rows = read_results(RESULTS / f"table1v2_{network}.csv")
    by: dict[str, dict[str, float]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = as_number(r[metric])
    images = sorted(by[reference])
    d = paired_difference([by["clustercam"][i] for i in images], [by[reference][i] for i in images])
    c = v[f"{network.replace('efficientnet_', '')} {metric} vs {reference}"]
    assert c.value == pytest.approx(scale * d.mean)
    assert (c.lo, c.hi) == pytest.approx((scale * d.lo, scale * d.hi))
    lower_is_better = metric in ("drop", "deletion")
    side = "reproduced" if (d.hi < 0) == lower_is_better else "contradicted"
    assert c.outcome == ("not separated" if d.lo <= 0 <= d.hi else side)


def test_the_paper_claims_on_lite2(v):
    for ref in ("gradcam", "gradcampp", "ablationcam"):
        assert v[f"lite2 drop vs {ref}"].outcome == "reproduced"
    assert v["lite2 drop vs scorecam"].outcome == "not separated"


def test_means_table_counts_twins_once():
    rows, _ = table1.load(RESULTS, "efficientnet_lite2")
    t = table1.means_table(rows, ("drop", "increase"), title="lite2")
    names = [r[0] for r in t.rows]
    assert "Grad-CAM (= CAM, XGrad-CAM, HiResCAM)" in names
    assert not any(n.startswith("CAM") for n in names)
    assert t.header == ("method", "images", "drop ↓ (clipped at 0) %", "paper", "increase ↑ %", "paper")
    cluster = next(r for r in t.rows if r[0] == "Cluster-CAM")
    assert cluster[3] == "11.60"
    assert cluster[5] == "26.10"
    assert "<table>" in t._repr_html_()
    assert "lite2" in str(t)


def test_committed_figures_are_labelled():
    rows, _ = table1.load(RESULTS, "efficientnet_lite0")
    small = [r for r in rows if r["image"] in sorted({r["image"] for r in rows})[:30]]
    for fig in (table1.coverage_figure(small, "c"), table1.distributions_figure(small, title="d")):
        for ax in fig.axes:
            if ax.get_label() != "<colorbar>" and ax.has_data():
                assert ax.get_ylabel()
                assert ax.get_title()
        plt.close(fig)
    fig, pairs = table1.agreement_figure(small, ["drop", "gain", "road"], title="a")
    assert len(pairs) == 3
    assert fig.axes[0].get_title() == "a"
    plt.close(fig)


class _Identity:
    def preprocess(self, image, resize=False):
        return image[None]

    def unnormalize(self, x):
        return x


def test_composite_panels_keep_the_composite_aspect():
    boxes = ((0, 0, 32, 32), (0, 32, 32, 32))
    composite = SimpleNamespace(image=torch.rand(3, 32, 64), boxes=boxes, class_indices=(1, 2))
    rows = [
        {"class_index": c, "label": f"class {c}", "method": m, "mass_inside": 0.5, "heatmap": torch.rand(32, 64)}
        for c in (1, 2)
        for m in ("gradcam", "clustercam", "scorecam", "eigencam")
    ]
    fig = table1.composite_figure(_Identity(), composite, rows, ncols=2, width=8)
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 8
    for ax in panels:
        box = ax.get_window_extent()
        assert box.width / box.height == pytest.approx(2.0, rel=0.05)  # no empty band above or below the image
        assert "→ class" in ax.get_title()
    plt.close(fig)


@pytest.mark.slow
def test_one_image_figures(lite0, dev_records):
    from camlab.evaluation.harness import parse_methods

    specs = parse_methods(["gradcam", "clustercam"])
    x = lite0.preprocess(dev_records[0].path)
    assert set(table1.zero_share(lite0, x, specs)) == {"gradcam", "clustercam"}
    for fig in (
        table1.explanation_inputs(lite0, x, specs),
        table1.curves_figure(lite0, x, specs, n_steps=4, title="t"),
        table1.road_figure(lite0, x, specs[:1], title="r"),
    ):
        assert fig.axes
        plt.close(fig)


def test_pointing_table_counts_twins_once():
    _, tiles = table1.load(RESULTS, "efficientnet_lite0")
    t = table1.pointing_table(tiles, "p")
    names = [r[0] for r in t.rows]
    assert "Grad-CAM (= CAM, XGrad-CAM)" in names
    assert "Grad-CAM++ (= SmoothGrad-CAM++)" in names
    assert all(r[1] == "185" for r in t.rows)
    means = [float(r[2].split()[0]) for r in t.rows]
    assert means == sorted(means, reverse=True)
