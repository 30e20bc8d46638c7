"""Sweeps share one fitted Cluster-CAM state per input: settings that keep the clusters cost no forward pass."""

import pytest
import torch

import camlab
from camlab.ablation import compare, rank_settings, recommend, seed_stability, sweep


def test_a_sweep_over_alpha_and_coupling_costs_one_fit(lite0, real_batch, monkeypatch):
    """Settings that differ in α and the coupling share one forward pass and one set of cluster
    scores: 1 + Q passes per image in all (the metrics' own passes are stubbed out here)."""
    import camlab.ablation as A

    x = real_batch[:2]
    monkeypatch.setattr(A.M, "measure", lambda module, x, heat, targets, n_steps: {"drop": heat.mean((1, 2))})
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
    skip = ("parameter", "value", "pointing")  # pointing is NaN without composites
    for a, b in zip(by_q, named):
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
        assert a["pointing"] != a["pointing"] and b["pointing"] != b["pointing"]


def test_seed_stability(lite0, real_batch):
    from sklearn.metrics import adjusted_rand_score

    x = real_batch[:2]
    same = seed_stability(lite0.module, x, "blocks.6", [3, 3], n_clusters=4)
    assert same == {"ari": 1.0, "same_base": 1.0, "same_scissors": 1.0, "corr": pytest.approx(1.0), "corr_min": pytest.approx(1.0)}
    two = seed_stability(lite0.module, x, "blocks.6", [0, 1], n_clusters=4)
    a, b = (camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, seed=s)(x) for s in (0, 1))
    direct = [adjusted_rand_score(a.labels[i].numpy(), b.labels[i].numpy()) for i in range(2)]
    assert two["ari"] == pytest.approx(sum(direct) / 2)
    assert -1.0 <= two["corr_min"] <= two["corr"] <= 1.0
    ward = seed_stability(lite0.module, x, "blocks.6", [0, 1, 2], n_clusters=4, clustering="ward")
    assert ward["ari"] == 1.0 and ward["corr_min"] == pytest.approx(1.0)  # no seed: the same map
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_stability(lite0.module, x, "blocks.6", [0])


def test_rank_settings_by_hand():
    rows = [
        {"value": "a", "drop": 0.1, "increase": 1.0, "insertion": 0.9, "deletion": 0.1, "pointing": 0.9, "coverage": 0.2},
        {"value": "b", "drop": 0.5, "increase": 0.0, "insertion": 0.1, "deletion": 0.5, "pointing": 0.1, "coverage": 0.8},
    ]
    table = rank_settings(rows)
    assert [r["value"] for r in table] == ["a", "b"] and table[0]["mean_rank"] == 1.0 and table[1]["mean_rank"] == 2.0


def test_recommend_breaks_ties_by_cost_then_closeness():
    table = [
        {"value": 10, "mean_rank": 2.2, "n_forward": 11},
        {"value": 8, "mean_rank": 2.6, "n_forward": 9},
        {"value": 6, "mean_rank": 7.2, "n_forward": 7},
    ]
    assert recommend(table, current=6) == 8  # 10 and 8 tie (within 0.5): the cheaper wins
    alphas = [{"value": 1.0, "mean_rank": 3.4}, {"value": 0.8, "mean_rank": 3.6}, {"value": 0.9, "mean_rank": 3.6}, {"value": 0.5, "mean_rank": 5.8}]
    assert recommend(alphas, current=0.5) == 0.8  # same cost: the nearest to the present default
    assert recommend([{"value": "spectral", "mean_rank": 1.2}, {"value": "kmeans", "mean_rank": 1.8}], current="kmeans") == "spectral"
