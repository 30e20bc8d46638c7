"""Sweeps share one fitted Cluster-CAM state per input: settings that keep the clusters cost no forward pass.
The rule that chose the defaults from such rows is tested in test_defaults_rule.py."""

import pytest
import torch

import camlab
from camlab.book.sweeps import base_scissors_swaps, compare, seed_stability, sweep


def test_a_sweep_over_alpha_and_coupling_costs_one_fit(lite0, real_batch, monkeypatch):
    """Settings that differ in α and the coupling share one forward pass and one set of cluster
    scores: 1 + Q passes per image in all (the metrics' own passes are stubbed out here)."""
    x = real_batch[:2]
    monkeypatch.setattr(
        camlab.metrics,
        "measure",
        lambda module, x, heat, targets, metrics=None, n_steps=None: {"drop": heat.mean((1, 2))},
    )
    calls = []
    handle = lite0.module.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        grid = {
            (c, a): {"n_clusters": 4, "coupling": c, "alpha": a}
            for c in ("normalized", "paper", "weighted")
            for a in (0.2, 0.5, 0.9)
        }
        rows = compare(lite0.module, x, "blocks.6", grid, n_steps=2, progress=False)
        by_alpha = sweep(
            lite0.module, x, "blocks.6", "alpha", [0.0, 1.0], n_steps=2, base={"n_clusters": 4}, progress=False
        )
    finally:
        handle.remove()
    assert sum(calls) == 2 * 2 * (1 + 4)  # one fit for the whole grid, one for the sweep
    assert len(rows) == 9 * 2
    assert all(r["n_forward"] == 1 + 4 for r in rows + by_alpha)
    for r in rows:
        fresh = camlab.ClusterCAM(lite0.module, "blocks.6", **grid[r["value"]])(x[r["image"] : r["image"] + 1])
        assert r["drop"] == pytest.approx(float(fresh.heatmaps.mean()), abs=1e-5)


def test_sweep_rows_costs_and_ranking(lite0, real_batch):
    x = real_batch[:2]
    q_rows = sweep(lite0.module, x, "blocks.6", "n_clusters", [2, 3], n_steps=2, progress=False)
    assert [r["n_forward"] for r in q_rows] == [3, 3, 4, 4]
    assert [r["value"] for r in q_rows] == [2, 2, 3, 3]
    assert {r["parameter"] for r in q_rows} == {"n_clusters"}
    with pytest.raises(ValueError, match="cannot sweep 'seed'"):
        sweep(lite0.module, x, "blocks.6", "seed", [1])


def test_compare_measures_whole_settings_like_a_sweep(lite0, real_batch):
    x = real_batch[:2]
    by_q = sweep(lite0.module, x, "blocks.6", "n_clusters", [2, 3], n_steps=2, base={"alpha": 0.3}, progress=False)
    named = compare(
        lite0.module,
        x,
        "blocks.6",
        {"two": {"n_clusters": 2, "alpha": 0.3}, "three": {"n_clusters": 3, "alpha": 0.3}},
        n_steps=2,
        progress=False,
    )
    assert [r["value"] for r in named] == ["two", "two", "three", "three"]
    skip = ("parameter", "value", "method", "seconds")  # the labels, and the time each call took
    for a, b in zip(by_q, named, strict=True):
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
        assert "pointing" not in a  # no composites, no pointing rows


def test_sweep_rows_are_the_harness_rows(lite0, real_batch, data_root):
    """Same row format and values as camlab.evaluation.harness, and the pointing game on the harness's tiles."""
    from camlab.evaluation import harness as E

    x = real_batch[:2]
    rows = compare(lite0.module, x, "blocks.6", {"q4": {"n_clusters": 4}}, n_steps=4, progress=False)
    exp = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4)(x)
    direct = E.explanation_rows(lite0.module, x, exp, n_steps=4, method="q4")
    assert set(E.FIELDS) <= set(rows[0])
    for a, b in zip(rows, direct, strict=True):
        for m in E.METRICS:
            assert a[m] == pytest.approx(b[m], abs=1e-6), m
        assert (a["image"], a["target"], a["params"], a["n_forward"]) == (b["image"], b["target"], b["params"], 1 + 4)
    comps = camlab.data.grid_composites(camlab.data.imagenet_folder(data_root / "imagenet-dev"), k=2, n=2, seed=0)
    tiles, skipped = E.pointing_tiles(lite0, comps)
    assert len(tiles) + skipped == 4
    pointing = (
        torch.cat([t["x"] for t in tiles]),
        torch.tensor([t["class_index"] for t in tiles]),
        [t["box"] for t in tiles],
    )
    spec = E.parse_methods("clustercam:n_clusters=4")
    harness, _ = E.pointing_game(lite0, comps, spec, layer="blocks.6", progress=False)
    ours = [
        r
        for r in compare(
            lite0.module, x, "blocks.6", {"q4": {"n_clusters": 4}}, n_steps=2, pointing=pointing, progress=False
        )
        if "pointing" in r
    ]
    assert [r["pointing"] for r in ours] == pytest.approx([r["mass_inside"] for r in harness], abs=1e-6)


def test_seed_stability(lite0, real_batch):
    from sklearn.metrics import adjusted_rand_score

    x = real_batch[:2]
    same = seed_stability(lite0.module, x, "blocks.6", [3, 3], n_clusters=4, clustering="kmeans")
    assert same == {
        "ari": 1.0,
        "same_base": 1.0,
        "same_scissors": 1.0,
        "corr": pytest.approx(1.0),
        "corr_min": pytest.approx(1.0),
    }
    two = seed_stability(lite0.module, x, "blocks.6", [0, 1], n_clusters=4, clustering="kmeans")
    a, b = (camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, clustering="kmeans", seed=s)(x) for s in (0, 1))
    direct = [adjusted_rand_score(a.labels[i].numpy(), b.labels[i].numpy()) for i in range(2)]
    assert two["ari"] == pytest.approx(sum(direct) / 2)
    assert -1.0 <= two["corr_min"] <= two["corr"] <= 1.0
    ward = seed_stability(lite0.module, x, "blocks.6", [0, 1, 2], n_clusters=4, clustering="ward")
    assert ward["ari"] == 1.0
    assert ward["corr_min"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_stability(lite0.module, x, "blocks.6", [0])


def test_base_scissors_swaps_by_hand(lite0, data_root):
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
