"""Chapter 02 (gradient CAMs): the collapse at the input of global average pooling, the groups of
alike maps, the gradient figure and the verdict on the committed Table 1 run."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from camlab.book.chapters import gradient
from camlab.evaluation.harness import read_results
from camlab.evaluation.stats import as_number, holm, paired_difference

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _groups(maps):
    return gradient.groups({k: SimpleNamespace(heatmaps=v) for k, v in maps.items()})


def test_collapse_at_bn2(lite0):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    maps = gradient.run_all(lite0, "bn2", x, n_samples=2)
    assert list(maps) == list(gradient.NAMES)
    c = gradient.collapse(lite0, "bn2", x, maps)
    assert c.spread <= 1e-6  # the gradient is one constant per channel
    assert set(c.gaps) == {"Grad-CAM − CAM", "XGrad-CAM − Grad-CAM", "HiResCAM − Grad-CAM",
                           "SmoothGrad-CAM++ − Grad-CAM++"}
    assert max(c.gaps.values()) <= gradient.EXACT
    g = gradient.raw_gradients(lite0, "bn2", x)
    assert g.shape == (1280, 7, 7)
    fig, stats = gradient.gradient_figure({"bn2": g})
    assert stats["bn2"]["within"] <= 1e-4
    assert len(fig.axes) == 6


def test_groups_join_alike_maps_and_the_figure_draws_them():
    torch.manual_seed(0)
    a = torch.rand(3, 7, 7)
    grp = _groups({"A": a, "B": 2 * a + 1, "C": torch.rand(3, 7, 7)})
    assert grp.groups == [["A", "B"], ["C"]]
    assert grp.r.shape == (3, 3, 3)
    assert np.allclose(np.diagonal(grp.r.mean(2)), 1)
    assert len(grp.between) == 2
    assert len(grp.within) == 1
    assert np.isclose(grp.within[0], 1.0)
    assert "2 distinct map(s) of 3" in grp.describe("layer")
    fig = gradient.correlation_figure({"one": grp, "two": grp})
    assert len(fig.axes) == 3
    assert all(ax.get_title() for ax in fig.axes[:2])


def test_verdict_on_the_committed_table1_run():
    torch.manual_seed(0)
    a = torch.rand(4, 7, 7)
    at_gap = gradient.Collapse("bn2", 0.0, {"XGrad-CAM − Grad-CAM": 2e-7})
    v = gradient.verdict(at_gap, _groups({"A": a, "B": a}), _groups({"A": a, "C": torch.rand(4, 7, 7)}),
                         RESULTS, "efficientnet_lite0", "blocks.6.0.bn1")
    assert [c.label for c in v.claims] == ["constant g", "one map", "several maps", "same scores", "drop", "increase"]
    assert v["drop"].outcome == "not separated"
    assert v["increase"].outcome == "contradicted"
    assert v["same scores"].outcome == "reproduced"
    assert v["same scores"].n == 200
    assert len(v.notes) == 5
    # independently: Grad-CAM++ − Grad-CAM on the increase, in points, lies below 0
    rows = read_results(RESULTS / "table1v2_efficientnet_lite0.csv")
    by = {m: {r["image"]: as_number(r["increase"]) for r in rows if r["method"] == m} for m in ("gradcampp", "gradcam")}
    images = sorted(by["gradcam"])
    d = paired_difference([by["gradcampp"][i] for i in images], [by["gradcam"][i] for i in images])
    assert d.hi < 0
    assert np.isclose(100 * d.mean, v["increase"].value)
    ps = gradient._pvalues(rows, [("gradcam", "gradcampp", "drop"), ("gradcampp", "gradcam", "increase")])
    assert np.isclose(ps[1], d.p)
    assert ps == _raw_p(rows)
    assert f"{holm(ps)[1]:.2g} after Holm" in v.notes[-1]
    # without a committed run, only the live claims
    two = _groups({"A": a, "C": torch.rand(4, 7, 7)})
    assert len(gradient.verdict(at_gap, _groups({"A": a}), two, None, "x", "l").claims) == 3


def _raw_p(rows):
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = r
    out = []
    for a, b, k in [("gradcam", "gradcampp", "drop"), ("gradcampp", "gradcam", "increase")]:
        images = [i for i in by[a] if i in by[b]]
        x, y = ([as_number(by[m][i][k]) for i in images] for m in (a, b))
        out.append(paired_difference(x, y).p)
    return out
