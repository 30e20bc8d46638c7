"""Chapter 03 (perturbation CAMs and EigenCAM): map correlations, the cost figure from the
committed timing benchmark, and the verdict on the committed Table 1 run."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from camlab.book.chapters import gradient_free
from camlab.evaluation.harness import read_results
from camlab.evaluation.stats import as_number, paired_difference

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def test_correlations_pair_every_two_methods():
    torch.manual_seed(0)
    a = torch.rand(2, 5, 5)
    maps = {k: SimpleNamespace(heatmaps=v) for k, v in {"A": a, "B": 3 * a, "C": -a}.items()}
    r = gradient_free.correlations(maps)
    assert list(r) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert np.allclose(r["A", "B"], 1, atol=1e-6)
    assert np.allclose(r["A", "C"], -1, atol=1e-6)


def test_cost_figure_shows_passes_beside_time():
    bench = gradient_free.read_bench(RESULTS)
    assert {r["method"] for r in bench} == set(gradient_free.BENCH_METHODS)
    assert {r["layer"] for r in bench} == {"bn2", "blocks.6"}
    fig = gradient_free.cost_figure(bench)
    left, right = fig.axes[:2]
    assert left.get_xscale() == right.get_xscale() == "log"
    assert "forward passes" in left.get_xlabel()
    assert "seconds" in right.get_xlabel()
    assert any("partial" in t.get_text() for t in left.get_yticklabels())
    assert len(right.get_legend().get_texts()) == 2  # one entry per layer


def test_verdict_on_the_committed_runs():
    v = gradient_free.verdict(RESULTS, "efficientnet_lite0")
    labels = [c.label for c in v.claims]
    assert labels == ["Score-CAM drop", "Score-CAM increase", "Ablation-CAM drop", "Ablation-CAM increase",
                      "Group-CAM insertion", "EigenCAM drop", "time"]
    assert v["Score-CAM drop"].outcome == v["Ablation-CAM drop"].outcome == "reproduced"
    assert v["EigenCAM drop"].outcome == "contradicted"
    assert v["Group-CAM insertion"].outcome == "not separated"
    assert v["time"].outcome == "reproduced"
    assert v["time"].value > 10
    assert len(v.notes) == 5
    # independently: Score-CAM − Grad-CAM on the drop, in points, lies below 0
    rows = read_results(RESULTS / "table1v2_efficientnet_lite0.csv")
    by = {m: {r["image"]: as_number(r["drop"]) for r in rows if r["method"] == m} for m in ("scorecam", "gradcam")}
    images = sorted(by["gradcam"])
    d = paired_difference([by["scorecam"][i] for i in images], [by["gradcam"][i] for i in images])
    assert d.hi < 0
    assert np.isclose(100 * d.mean, v["Score-CAM drop"].value)
    bench = {(r["layer"], r["method"]): float(r["seconds"]) for r in gradient_free.read_bench(RESULTS)}
    assert np.isclose(v["time"].value, bench["bn2", "scorecam"] / bench["bn2", "ablationcam"])
