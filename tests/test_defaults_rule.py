"""The rule that chose Cluster-CAM's defaults (benchmarks/defaults_rule.py): ranking with overlapping
intervals tied, stability first, ties to fewer passes then to the paper's form, reading the
committed CSVs — and, on the committed 200-image run, the rule still chooses camlab's DEFAULTS."""

import csv
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from camlab.methods.cluster import CLUSTERINGS, COUPLINGS, DEFAULTS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # benchmark scripts import each other as top-level modules
    sys.path.insert(0, str(BENCHMARKS))

import defaults_rule as R  # noqa: E402

COMMITTED = [BENCHMARKS / "results" / f"{part}_efficientnet_lite0" for part in ("grid", "alpha_q")]


def test_rank_settings_by_hand():
    """Means, directions (drop ↓, increase and insertion ↑) and the mean rank, worked out by hand."""
    rows = [
        {"value": "a", "drop": 0.1, "increase": 1.0, "insertion": 0.1, "n_forward": 9},
        {"value": "a", "drop": 0.3, "increase": 1.0, "insertion": 0.2, "n_forward": 9},
        {"value": "b", "drop": 0.5, "increase": 0.0, "insertion": 0.8, "n_forward": 7},
        {"value": "b", "drop": 0.7, "increase": 0.0, "insertion": 0.9, "n_forward": 7},
    ]
    table = {r["value"]: r for r in R.rank_settings(rows)}
    a, b = table["a"], table["b"]
    assert (a["drop"], b["drop"], a["insertion"], b["insertion"]) == pytest.approx((0.2, 0.6, 0.15, 0.85))
    assert 0.1 <= a["drop_lo"] <= 0.2 <= a["drop_hi"] <= 0.3  # each interval within its values
    assert (a["drop_rank"], b["drop_rank"]) == (1, 2)  # lower drop is better
    assert (a["increase_rank"], b["increase_rank"]) == (1, 2)  # higher increase is better
    assert (a["insertion_rank"], b["insertion_rank"]) == (2, 1)  # higher insertion is better
    assert a["mean_rank"] == pytest.approx(4 / 3)
    assert b["mean_rank"] == pytest.approx(5 / 3)
    assert (a["n_forward"], b["n_forward"]) == (9, 7)
    assert "deletion_rank" not in a
    assert "pointing" not in a
    assert "setting" not in a  # rows without a setting give none


def test_rank_settings_ties_overlapping_intervals():
    """Three settings: a and b overlap on drop (tied), c is separated and worse."""
    rng = np.random.default_rng(0)
    rows = []
    for v, centre in (("a", 0.30), ("b", 0.32), ("c", 0.60)):
        rows += [{"value": v, "drop": float(centre + rng.normal(0, 0.1)), "n_forward": 9} for _ in range(30)]
    ranked = R.rank_settings(rows)
    table = {r["value"]: r for r in ranked}
    assert table["a"]["drop_lo"] < table["a"]["drop"] < table["a"]["drop_hi"]
    assert table["a"]["drop_rank"] == table["b"]["drop_rank"] == 1
    assert table["c"]["drop_rank"] == 3
    assert ranked[-1]["value"] == "c"


def test_rank_settings_ranks_only_metrics_measured_for_every_setting():
    """A metric one setting lacks (empty, or NaN in a CSV) gets its interval where measured but no
    rank; the mean rank is over the rest. A metric with no better direction is refused."""
    rows = [
        {"value": "a", "drop": 0.1, "deletion": 0.2, "n_forward": 5, "setting": {"n_clusters": 4}},
        {"value": "a", "drop": 0.2, "deletion": 0.3, "n_forward": 5, "setting": {"n_clusters": 4}},
        {"value": "b", "drop": 0.6, "deletion": "nan", "n_forward": 9},
        {"value": "b", "drop": 0.7, "deletion": "", "n_forward": 9},
    ]
    table = {r["value"]: r for r in R.rank_settings(rows)}
    assert table["a"]["deletion"] == pytest.approx(0.25)
    assert np.isnan(table["b"]["deletion"])
    assert "deletion_rank" not in table["a"]
    assert "deletion_rank" not in table["b"]
    assert (table["a"]["mean_rank"], table["b"]["mean_rank"]) == (1, 2)  # drop alone
    assert table["a"]["setting"] == {"n_clusters": 4}
    assert "setting" not in table["b"]
    with pytest.raises(ValueError, match="coverage: no better direction"):
        R.rank_settings(rows, metrics=("drop", "coverage"))


def test_paper_distance_orders_as_the_rule_states():
    """RESULTS.md, Step 8, rule 4: eq 22 as printed before camlab's normalised form before the
    weighted coupling (the coupling first), K-means before spectral before Ward."""
    pairs = itertools.product(CLUSTERINGS, COUPLINGS)
    order = sorted(pairs, key=lambda s: R.paper_distance({"clustering": s[0], "coupling": s[1]}))
    assert order == [
        ("kmeans", "paper"),
        ("spectral", "paper"),
        ("ward", "paper"),
        ("kmeans", "normalized"),
        ("spectral", "normalized"),
        ("ward", "normalized"),
        ("kmeans", "weighted"),
        ("spectral", "weighted"),
        ("ward", "weighted"),
    ]
    assert R.paper_distance(R.PAPER_FORM) == 0
    defaults = {k: DEFAULTS[k] for k in ("clustering", "coupling")}
    assert R.paper_distance({}) == R.paper_distance(defaults)  # left out: DEFAULTS
    with pytest.raises(ValueError, match="unknown coupling 'eq22'"):
        R.paper_distance({"coupling": "eq22"})


def _rows(label, setting, drop, q):
    return [{"value": label, "setting": setting, "drop": drop + 0.001 * i, "n_forward": 1 + q} for i in range(10)]


def test_choose_setting_requires_stability_then_cost_then_the_papers_form():
    unstable = {"clustering": "kmeans", "coupling": "normalized"}
    stable_paper = {"clustering": "ward", "coupling": "paper"}
    stable_norm = {"clustering": "ward", "coupling": "normalized"}
    costly = {"clustering": "spectral", "coupling": "paper", "n_clusters": 12}
    data = (
        _rows("u", unstable, 0.05, 8)
        + _rows("wn", stable_norm, 0.30, 8)
        + _rows("wp", stable_paper, 0.30, 8)
        + _rows("sp", costly, 0.30, 12)
    )
    stability = {"u": 0.77, "wp": 1.0, "wn": 1.0, "sp": 0.995}
    winner, table = R.choose_setting(data, stability)
    assert [r["value"] for r in table if r["value"] == "u"] == []  # far better, but not seed-stable
    assert len(table) == 3
    assert {r["mean_rank"] for r in table} == {1.0}
    assert winner["value"] == "wp"
    assert winner["setting"] == stable_paper
    winner, _ = R.choose_setting(data, {**stability, "u": 0.99})  # at the threshold: stable, and best
    assert winner["value"] == "u"
    winner, _ = R.choose_setting(data, {"wn": 1.0, "sp": 1.0})  # a value without stability is not stable
    assert winner["value"] == "wn"


def test_choose_setting_refuses_what_it_cannot_rank():
    rows = _rows("u", {"clustering": "kmeans"}, 0.1, 8)
    with pytest.raises(ValueError, match="no setting reaches a seed stability of 0.99"):
        R.choose_setting(rows, {"u": 0.5})
    with pytest.raises(ValueError, match="measured for every stable setting: nothing to rank"):
        R.choose_setting([{"value": "u", "setting": {}, "n_forward": 9}], {"u": 1.0})


def test_read_measured_counts_a_setting_in_two_parts_once(tmp_path):
    label = "clustercam:clustering=ward;n_clusters=8"
    for part in ("grid", "alpha_q"):
        harness = f"image,method,drop,n_forward\na.JPEG,{label},0.1,9\nb.JPEG,{label},0.3,9\n"
        (tmp_path / f"{part}.csv").write_text(harness)
        (tmp_path / f"{part}_pointing.csv").write_text(f"composite,class_index,method,mass_inside\n0,5,{label},0.9\n")
        (tmp_path / f"{part}_stability.csv").write_text(f"method,corr\n{label},1.0\n")
    rows, stability = R.read_measured([tmp_path / "grid", tmp_path / "alpha_q", tmp_path / "missing"])
    images, tiles = [r for r in rows if "drop" in r], [r for r in rows if "pointing" in r]
    assert [r["image"] for r in images] == ["a.JPEG", "b.JPEG"]
    assert [r["pointing"] for r in tiles] == ["0.9"]
    assert {r["value"] for r in rows} == {label}
    assert stability == {label: 1.0}
    assert all(r["setting"] == {"clustering": "ward", "n_clusters": 8} for r in rows)  # the label, parsed
    assert R.read_measured([tmp_path / "missing"]) == ([], {})


@pytest.fixture(scope="module")
def committed_choice():
    rows, stability = R.read_measured(COMMITTED)
    return rows, stability, R.choose_setting(rows, stability)


def test_the_rule_on_the_committed_run_chooses_camlabs_defaults(committed_choice):
    rows, stability, (winner, table) = committed_choice
    assert len({r["image"] for r in rows if "image" in r}) == 200
    assert winner["setting"] == {k: DEFAULTS[k] for k in ("alpha", "clustering", "coupling", "n_clusters")}
    assert stability[winner["value"]] >= R.STABLE
    runner_up = table[1]  # RESULTS.md: tied with Q = 12 on mean rank 1.0, chosen for its fewer passes
    assert runner_up["mean_rank"] == winner["mean_rank"] == 1.0
    assert runner_up["setting"]["n_clusters"] == 12
    assert winner["n_forward"] == 11 < runner_up["n_forward"]


def test_full_run_choose_prints_the_rules_choice(committed_choice, monkeypatch, capsys):
    """``full_run.py choose`` reads the committed CSVs and hands them to the rule (the ranking
    itself is the fixture's, so that it runs once)."""
    import full_run

    rows, stability, choice = committed_choice
    given = []
    monkeypatch.setattr(full_run, "choose_setting", lambda r, s: given.append((r, s)) or choice)
    assert full_run.main(["choose"]) == 0
    assert given == [(rows, stability)]
    assert capsys.readouterr().out.splitlines()[-1] == f"chosen: {choice[0]['value']}"


def test_full_run_sanity_shards_share_the_chunks(tmp_path, monkeypatch):
    """``full_run.py sanity --shard k/n``: n shards together run every chunk of images once, each
    shard only its own (chunk index ≡ k mod n), and a rerun skips what is in the CSV (the checks
    themselves are stubbed: this tests the bookkeeping, not the method)."""
    import camlab.sanity
    import full_run
    import torch

    calls = []

    def fake(name, clf, layer, x, mode, seed, **kw):
        calls.append(len(calls))
        return [{"step": 0, "block": "none", "image": i, "spearman": 1.0} for i in range(len(x))]

    class Clf:
        name, target_layer = "stub", "bn2"

        def preprocess(self, paths):
            return torch.zeros(len(paths), 3, 4, 4)

    monkeypatch.setattr(full_run, "RESULTS", tmp_path)
    monkeypatch.setattr(camlab.sanity, "model_randomization", fake)
    n_images = len(camlab.data.imagenet_folder(camlab.data.data_root() / "imagenet-dev")[:: full_run.SANITY_STEP])
    n_chunks = -(-n_images // full_run.SANITY_CHUNK)
    full_run.sanity(Clf(), ["gradcam"], ["cascading"], shard=(0, 2))
    assert len(calls) == -(-n_chunks // 2)  # chunks 0, 2, 4, …
    full_run.sanity(Clf(), ["gradcam"], ["cascading"], shard=(1, 2))
    assert len(calls) == n_chunks
    rows = full_run.read(tmp_path / "sanity_stub.csv")
    assert len(rows) == n_images
    assert len({r["image"] for r in rows}) == n_images  # each image once
    full_run.sanity(Clf(), ["gradcam"], ["cascading"])  # all done: nothing runs again
    assert len(calls) == n_chunks
    # a run cut short, resumed with another chunk size: only the missing images run, none twice
    kept = [r for r in rows if r["image"] not in {rows[1]["image"], rows[12]["image"]}]
    with (tmp_path / "sanity_stub.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    full_run.sanity(Clf(), ["gradcam"], ["cascading"], chunk=3)
    assert len(calls) == n_chunks + 2  # the two chunks of 3 that hold a missing image
    again = full_run.read(tmp_path / "sanity_stub.csv")
    assert sorted(r["image"] for r in again) == sorted(r["image"] for r in rows)
