"""Sweeps share one fitted Cluster-CAM state per input: settings that keep the clusters cost no forward pass."""

import pytest
import torch

import camlab
from camlab.sweeps import compare, rank_settings, recommend, seed_stability, separable, sweep


def test_a_sweep_over_alpha_and_coupling_costs_one_fit(lite0, real_batch, monkeypatch):
    """Settings that differ in α and the coupling share one forward pass and one set of cluster
    scores: 1 + Q passes per image in all (the metrics' own passes are stubbed out here)."""
    import camlab.sweeps as A

    x = real_batch[:2]
    monkeypatch.setattr(A.M, "measure", lambda module, x, heat, targets, metrics=None, n_steps=None: {"drop": heat.mean((1, 2))})
    calls = []
    handle = lite0.module.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        grid = {(c, a): {"n_clusters": 4, "coupling": c, "alpha": a} for c in ("normalized", "paper", "weighted") for a in (0.2, 0.5, 0.9)}
        rows = compare(lite0.module, x, "blocks.6", grid, n_steps=2, progress=False)
        by_alpha = sweep(lite0.module, x, "blocks.6", "alpha", [0.0, 1.0], n_steps=2, base={"n_clusters": 4}, progress=False)
    finally:
        handle.remove()
    assert sum(calls) == 2 * 2 * (1 + 4)  # one fit for the whole grid, one for the sweep
    assert len(rows) == 9 * 2 and all(r["n_forward"] == 1 + 4 for r in rows + by_alpha)  # what each setting costs on its own
    for r in rows:
        fresh = camlab.ClusterCAM(lite0.module, "blocks.6", **grid[r["value"]])(x[r["image"] : r["image"] + 1])
        assert r["drop"] == pytest.approx(float(fresh.heatmaps.mean()), abs=1e-5)


def test_sweep_rows_costs_and_ranking(lite0, real_batch):
    x = real_batch[:2]
    q_rows = sweep(lite0.module, x, "blocks.6", "n_clusters", [2, 3], n_steps=2, progress=False)
    assert [r["n_forward"] for r in q_rows] == [3, 3, 4, 4]
    assert [r["value"] for r in q_rows] == [2, 2, 3, 3] and {r["parameter"] for r in q_rows} == {"n_clusters"}
    with pytest.raises(ValueError, match="cannot sweep 'seed'"):
        sweep(lite0.module, x, "blocks.6", "seed", [1])


def test_compare_measures_whole_settings_like_a_sweep(lite0, real_batch):
    x = real_batch[:2]
    by_q = sweep(lite0.module, x, "blocks.6", "n_clusters", [2, 3], n_steps=2, base={"alpha": 0.3}, progress=False)
    named = compare(lite0.module, x, "blocks.6", {"two": {"n_clusters": 2, "alpha": 0.3}, "three": {"n_clusters": 3, "alpha": 0.3}}, n_steps=2, progress=False)
    assert [r["value"] for r in named] == ["two", "two", "three", "three"]
    skip = ("parameter", "value", "method", "seconds")  # the labels, and the time each call took
    for a, b in zip(by_q, named):
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
        assert "pointing" not in a  # no composites, no pointing rows


def test_sweep_rows_are_the_harness_rows(lite0, real_batch, data_root):
    """Same row format and values as camlab.evaluate, and the pointing game on the harness's tiles."""
    from camlab import evaluate as E

    x = real_batch[:2]
    rows = compare(lite0.module, x, "blocks.6", {"q4": {"n_clusters": 4}}, n_steps=4, progress=False)
    exp = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4)(x)
    direct = E.explanation_rows(lite0.module, x, exp, n_steps=4, method="q4")
    assert set(E.FIELDS) <= set(rows[0])
    for a, b in zip(rows, direct):
        for m in E.METRICS:
            assert a[m] == pytest.approx(b[m], abs=1e-6), m
        assert (a["image"], a["target"], a["params"], a["n_forward"]) == (b["image"], b["target"], b["params"], 1 + 4)
    comps = camlab.data.grid_composites(camlab.data.imagenet_folder(data_root / "imagenet-dev"), k=2, n=2, seed=0)
    tiles, skipped = E.pointing_tiles(lite0, comps)
    assert len(tiles) + skipped == 4
    pointing = (torch.cat([t["x"] for t in tiles]), torch.tensor([t["class_index"] for t in tiles]), [t["box"] for t in tiles])
    spec = E.parse_methods("clustercam:n_clusters=4")
    harness, _ = E.pointing_game(lite0, comps, spec, layer="blocks.6", progress=False)
    ours = [r for r in compare(lite0.module, x, "blocks.6", {"q4": {"n_clusters": 4}}, n_steps=2, pointing=pointing, progress=False) if "pointing" in r]
    assert [r["pointing"] for r in ours] == pytest.approx([r["mass_inside"] for r in harness], abs=1e-6)


def test_seed_stability(lite0, real_batch):
    from sklearn.metrics import adjusted_rand_score

    x = real_batch[:2]
    same = seed_stability(lite0.module, x, "blocks.6", [3, 3], n_clusters=4, clustering="kmeans")
    assert same == {"ari": 1.0, "same_base": 1.0, "same_scissors": 1.0, "corr": pytest.approx(1.0), "corr_min": pytest.approx(1.0)}
    two = seed_stability(lite0.module, x, "blocks.6", [0, 1], n_clusters=4, clustering="kmeans")
    a, b = (camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, clustering="kmeans", seed=s)(x) for s in (0, 1))
    direct = [adjusted_rand_score(a.labels[i].numpy(), b.labels[i].numpy()) for i in range(2)]
    assert two["ari"] == pytest.approx(sum(direct) / 2)
    assert -1.0 <= two["corr_min"] <= two["corr"] <= 1.0
    ward = seed_stability(lite0.module, x, "blocks.6", [0, 1, 2], n_clusters=4, clustering="ward")
    assert ward["ari"] == 1.0 and ward["corr_min"] == pytest.approx(1.0)  # no seed: the same map
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_stability(lite0.module, x, "blocks.6", [0])


def test_rank_settings_by_hand():
    """Means, directions (drop ↓, increase and insertion ↑) and the mean rank, worked out by hand."""
    rows = [
        {"value": "a", "drop": 0.1, "increase": 1.0, "insertion": 0.1, "n_forward": 9},
        {"value": "a", "drop": 0.3, "increase": 1.0, "insertion": 0.2, "n_forward": 9},
        {"value": "b", "drop": 0.5, "increase": 0.0, "insertion": 0.8, "n_forward": 7},
        {"value": "b", "drop": 0.7, "increase": 0.0, "insertion": 0.9, "n_forward": 7},
    ]
    table = {r["value"]: r for r in rank_settings(rows)}
    a, b = table["a"], table["b"]
    assert (a["drop"], b["drop"], a["insertion"], b["insertion"]) == pytest.approx((0.2, 0.6, 0.15, 0.85))
    assert 0.1 <= a["drop_lo"] <= 0.2 <= a["drop_hi"] <= 0.3  # each interval within its values
    assert (a["drop_rank"], b["drop_rank"]) == (1, 2)  # lower drop is better
    assert (a["increase_rank"], b["increase_rank"]) == (1, 2)  # higher increase is better
    assert (a["insertion_rank"], b["insertion_rank"]) == (2, 1)  # higher insertion is better
    assert a["mean_rank"] == pytest.approx(4 / 3) and b["mean_rank"] == pytest.approx(5 / 3)
    assert (a["n_forward"], b["n_forward"]) == (9, 7)
    assert "deletion_rank" not in a and "pointing" not in a  # not measured: not ranked


def test_rank_settings_ties_overlapping_intervals():
    """Three settings: a and b overlap on drop (tied), c is separated and worse."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for v, centre in (("a", 0.30), ("b", 0.32), ("c", 0.60)):
        rows += [{"value": v, "drop": float(centre + rng.normal(0, 0.1)), "n_forward": 9} for _ in range(30)]
    table = {r["value"]: r for r in rank_settings(rows)}
    assert table["a"]["drop_lo"] < table["a"]["drop"] < table["a"]["drop_hi"]
    assert table["a"]["drop_rank"] == table["b"]["drop_rank"] == 1 and table["c"]["drop_rank"] == 3
    ranked = rank_settings(rows)
    assert not separable(ranked)  # the best and the runner-up overlap
    assert separable(rank_settings([r for r in rows if r["value"] != "b"]))


def test_recommend_breaks_ties_by_cost_then_closeness():
    table = [
        {"value": 10, "mean_rank": 2.2, "n_forward": 11},
        {"value": 8, "mean_rank": 2.6, "n_forward": 9},
        {"value": 6, "mean_rank": 7.2, "n_forward": 7},
    ]
    assert recommend(table, current=6) == 10  # ranks already tie overlapping intervals: 2.2 beats 2.6
    assert recommend(table, current=6, tie=0.5) == 8  # within a tie margin the cheaper wins
    alphas = [{"value": 1.0, "mean_rank": 3.4}, {"value": 0.8, "mean_rank": 3.4}, {"value": 0.9, "mean_rank": 3.4}, {"value": 0.5, "mean_rank": 5.8}]
    assert recommend(alphas, current=0.5) == 0.8  # same rank, same cost: the nearest to the present default
    assert recommend([{"value": "spectral", "mean_rank": 1.2}, {"value": "kmeans", "mean_rank": 1.8}], current="kmeans") == "spectral"


def test_choose_setting_requires_stability_then_cost_then_the_papers_form():
    from camlab.sweeps import choose_setting, paper_distance

    def rows(label, drop, q):
        return [{"value": label, "drop": drop + 0.001 * i, "n_forward": 1 + q} for i in range(10)]

    unstable, stable_paper, stable_norm, costly = (
        "clustercam:clustering=kmeans;coupling=normalized",
        "clustercam:clustering=ward;coupling=paper",
        "clustercam:clustering=ward;coupling=normalized",
        "clustercam:clustering=spectral;coupling=paper;n_clusters=12",
    )
    data = rows(unstable, 0.05, 8) + rows(stable_paper, 0.30, 8) + rows(stable_norm, 0.30, 8) + rows(costly, 0.30, 12)
    stability = {unstable: 0.77, stable_paper: 1.0, stable_norm: 1.0, costly: 0.995}
    pick, table, _ = choose_setting(data, stability)
    assert unstable not in {r["value"] for r in table}  # far better, but not seed-stable
    assert pick == stable_paper  # three tie; two are cheaper; of those the paper's eq 22 wins
    assert paper_distance({"clustering": "kmeans", "coupling": "paper"}) == 0 < paper_distance({"clustering": "ward", "coupling": "paper"}) < paper_distance({"coupling": "normalized"})
    with pytest.raises(ValueError, match="no setting reaches a seed stability of 0.99"):
        choose_setting(rows(unstable, 0.1, 8), {unstable: 0.5})


def test_base_scissors_swaps_by_hand(lite0, data_root):
    from camlab.sweeps import base_scissors_swaps

    comp = camlab.data.grid_composites(camlab.data.imagenet_folder(data_root / "imagenet-dev"), k=2, n=1, seed=0)[0]
    x = lite0.preprocess(comp.image, resize=False)
    a, b = comp.class_indices
    res = base_scissors_swaps(lite0.module, "blocks.6", x, a, b, n_clusters=4)
    ea, eb = (camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4)(x, targets=[c]) for c in (a, b))
    assert torch.equal(ea.labels, eb.labels)
    one, other = int(ea.base) == int(eb.scissors), int(eb.base) == int(ea.scissors)
    assert res == {"swapped": one and other, "half": one or other, "same_base": int(ea.base) == int(eb.base)}
    with pytest.raises(ValueError, match="one image at a time"):
        base_scissors_swaps(lite0.module, "blocks.6", x.expand(2, -1, -1, -1), a, b)


def test_read_measured_counts_a_setting_in_two_parts_once(tmp_path):
    from camlab.sweeps import read_measured

    label = "clustercam:clustering=ward;n_clusters=8"
    for part in ("grid", "alpha_q"):
        (tmp_path / f"{part}.csv").write_text(f"image,method,drop,n_forward\na.JPEG,{label},0.1,9\nb.JPEG,{label},0.3,9\n")
        (tmp_path / f"{part}_pointing.csv").write_text(f"composite,class_index,method,mass_inside\n0,5,{label},0.9\n")
        (tmp_path / f"{part}_stability.csv").write_text(f"method,corr\n{label},1.0\n")
    rows, stability = read_measured([tmp_path / "grid", tmp_path / "alpha_q", tmp_path / "missing"])
    assert len([r for r in rows if "drop" in r]) == 2 and len([r for r in rows if "pointing" in r]) == 1
    assert stability == {label: 1.0}
