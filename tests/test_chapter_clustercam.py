"""Notebook 05's chapter module: the named settings, the distinct columns, the committed cost,
peak, swap and seed runs, the Fig. 4 boxes and the verdict — on toy inputs and the committed CSVs."""

from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

from camlab.book.chapters import clustercam as cc
from camlab.evaluation.stats import mean_interval, paired_difference
from camlab.methods.cluster import DEFAULTS

matplotlib.use("Agg")
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def test_settings_name_the_papers_and_camlabs():
    named = cc.settings()
    paper, ours = named
    assert paper.startswith("paper's setting: K-means, Q = 6, eq 22 as printed")
    assert ours.startswith(f"camlab's defaults: Ward, Q = {DEFAULTS['n_clusters']}")
    assert named[paper]["coupling"] == "paper"
    assert named[paper]["n_clusters"] == 6
    assert {k: named[ours][k] for k in DEFAULTS} == DEFAULTS


def test_distinct_columns_leaves_out_copies():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 8, 8, generator=g)
    b = torch.rand(2, 8, 8, generator=g)
    kept, merged = cc.distinct_columns({"A": a, "A again": 2 * a + 1, "B": b})
    assert kept == ["A", "B"]
    assert merged["A again"][0] == "A"
    assert merged["A again"][1] == pytest.approx(1.0)


def test_cost_rows_and_figure_from_the_committed_timing_run():
    rows = {r["method"]: r for r in cc.cost_rows(RESULTS / "bench_table2_cpu.csv")}
    ab, sc = rows["ablationcam"], rows["scorecam"]
    assert ab["partial"] > 100
    assert ab["full"] == 1
    assert sc["full"] > 100
    assert sc["seconds"] > 20 * ab["seconds"]  # ...but not as much time
    assert set(rows) <= set(cc.COST_NAMES)
    fig = cc.plot_cost(list(rows.values()))
    assert all(ax.get_xlabel() for ax in fig.axes)


def test_peak_ratio_of_a_toy_state():
    maps = torch.zeros(1, 3, 2, 2)
    maps[0, 0, 0, 0], maps[0, 1, 0, 0], maps[0, 2, 0, 0] = 5.0, 1.0, 0.1
    state = SimpleNamespace(cluster_maps=maps, cluster_scores=torch.tensor([[0.2, 0.9, 0.1]]))
    assert cc.peak_ratio(state)[0] == pytest.approx(1.0 / 0.1)  # base: cluster 1, scissors: cluster 2


def test_committed_peaks_hold_the_far_apart_case():
    peaks = cc.read_peaks(RESULTS / "peaks_efficientnet_lite0.csv")
    assert set(peaks) == {"paper's setting", "camlab's defaults"}
    ratio = np.array(list(peaks["paper's setting"].values()))
    assert len(ratio) == 200
    assert np.max(np.maximum(ratio, 1 / ratio)) > 10


def test_region_shares_and_fig4_parts():
    mask = torch.zeros(10, 10)
    mask[:3] = 1.0
    shares = cc.region_shares(mask, {"top": (0.0, 0.3, 0.0, 1.0), "bottom": (0.5, 1.0, 0.0, 1.0)})
    assert shares == {"top": 1.0, "bottom": 0.0}
    maps = torch.zeros(1, 2, 10, 10)
    maps[0, 0, :3] = 1.0  # cluster 0 on the forehead
    maps[0, 1, 7:, 4:6] = 1.0  # cluster 1 on the lower face
    exp = SimpleNamespace(cluster_maps=maps, base=torch.tensor([0]), scissors=torch.tensor([1]),
                          heatmaps=torch.zeros(1, 10, 10))
    parts = cc.fig4_parts(exp)
    assert parts["base"] > 0
    assert parts["scissors"] > 0


def test_swap_figure_draws_one_row_per_target():
    e = SimpleNamespace(cluster_maps=torch.rand(1, 3, 7, 7), cluster_scores=torch.tensor([[0.5, 0.1, 0.3]]),
                        base=torch.tensor([0]), scissors=torch.tensor([1]), heatmaps=torch.rand(1, 28, 56),
                        labels=torch.tensor([[0, 0, 1, 2]]), params={"coupling": "paper", "alpha": 0.8})
    fig = cc.swap_figure(torch.rand(3, 28, 56), {"a": e, "b": e}, boxes={"forehead": cc.FOREHEAD})
    assert len(fig.axes) == 6
    assert "(2 ch.)" in fig.axes[1].get_title()


def test_committed_readers():
    seeds = cc.read_seed_stability(RESULTS / "seed_stability_bn2.csv")
    assert seeds["Ward, normalized"]["corr"] == 1.0
    assert seeds["K-means, paper"]["corr"] < 0.99
    swaps = cc.read_swaps(RESULTS / "swap_efficientnet_lite0.csv")
    assert len(swaps["swapped"]) == 86


def test_verdict_on_the_committed_runs():
    fig4 = {"paper's setting": {"base": 0.2, "scissors": -0.3}, "camlab's defaults": {"base": 0.3, "scissors": 0.2},
            "a near tie": {"base": 0.02, "scissors": 0.4}}
    v = cc.verdict(RESULTS, fig4)
    assert [c.label for c in v.claims] == ["fig4 paper's setting", "fig4 camlab's defaults", "fig4 a near tie", "swap",
                                           "kmeans seeds", "ward seeds"]
    assert v["fig4 a near tie"].outcome == "reproduced"  # the paper's words: no margin of camlab's own
    assert v["fig4 paper's setting"].outcome == "contradicted"
    assert v["fig4 camlab's defaults"].outcome == "reproduced"
    assert v["kmeans seeds"].outcome == "reproduced"
    assert v["ward seeds"].outcome == "reproduced"
    # the swap row against an independent recomputation from the CSV
    import csv

    with (RESULTS / "swap_efficientnet_lite0.csv").open() as fh:
        swapped = [int(r["swapped"]) for r in csv.DictReader(fh)]
    iv = mean_interval(swapped)
    assert v["swap"].value == pytest.approx(100 * iv.mean)
    assert v["swap"].hi == pytest.approx(100 * iv.hi)
    d = paired_difference(swapped, [0.5] * len(swapped))  # the rate against one half, composite by composite
    assert v["swap"].outcome == ("contradicted" if d.hi < 0 else "reproduced" if d.lo > 0 else "not separated")
    assert len(v.notes) == 3
    assert "<table" in v._repr_html_()
    assert [c.label for c in cc.verdict(RESULTS).claims] == ["swap", "kmeans seeds", "ward seeds"]


def test_swap_outcome_words():
    assert cc.swap_outcome({"swapped": True, "half": True}) == "interchanged both ways"
    assert cc.swap_outcome({"swapped": False, "half": True}) == "interchanged one way only"
    assert cc.swap_outcome({"swapped": False, "half": False}) == "not interchanged"
