"""camlab.book.chapters.ablations: the committed run against the defaults, its figure and
tables on a toy run, the live K × Q grid on a toy network, and the chapter's verdict on the
committed CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from camlab.book.chapters import ablations as A
from camlab.evaluation.stats import paired_difference

COMMITTED = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
DEFAULT = "clustercam:alpha=0.8;clustering=ward;coupling=normalized;n_clusters=10"
GRID = [  # the grid part, at Q = 8: its first label sets the grid's Q
    "clustercam:alpha=0.8;clustering=ward;coupling=normalized;n_clusters=8",
    "clustercam:alpha=0.8;clustering=kmeans;coupling=normalized;n_clusters=8",
    "clustercam:clustering=ward;coupling=weighted;n_clusters=8",
]
ALPHA_Q = [
    "clustercam:alpha=1.0;clustering=ward;coupling=normalized;n_clusters=8",
    DEFAULT,
    "clustercam:clustering=ward;coupling=weighted;n_clusters=10",
]
FIELDS = ["image", "class_index", "target", "method", "params", "drop", "increase", "insertion", "deletion",
          "coverage", "n_forward"]  # fmt: skip
TILE_FIELDS = ["composite", "class_index", "label", "method", "mass_inside", "max_inside", "coverage"]


def _write(path: Path, fields, rows) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A two-part toy run of 12 images and 8 tiles: the weighted settings drop 0.1 less than the
    rest on every image (separated), the others differ by noise."""
    path = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.5, 12)

    def rows(labels):
        out = []
        for lab in labels:
            shift = -0.1 if "weighted" in lab else 0.0
            for k in range(12):
                out.append({"image": f"i{k}.JPEG", "class_index": k, "target": k, "method": lab, "params": "{}",
                            "drop": base[k] + shift + rng.normal(0, 0.01), "increase": int(k % 2),
                            "insertion": 0.5 + rng.normal(0, 0.02), "deletion": 0.3 + rng.normal(0, 0.02),
                            "coverage": 0.3 - shift + rng.normal(0, 0.01), "n_forward": 9})  # fmt: skip
        return out

    def tiles(labels):
        return [{"composite": k, "class_index": 3, "label": "x", "method": lab, "max_inside": True,
                 "mass_inside": 0.9 + rng.normal(0, 0.02), "coverage": 0.3}
                for lab in labels for k in range(8)]  # fmt: skip

    for part, labels in (("grid", GRID), ("alpha_q", ALPHA_Q)):
        _write(path / f"{part}_toy.csv", FIELDS, rows(labels))
        _write(path / f"{part}_toy_pointing.csv", TILE_FIELDS, tiles(labels))
    _write(path / "grid_toy_stability.csv", ["method", "corr", "corr_min"],
           [{"method": lab, "corr": 1.0 if "ward" in lab else 0.7, "corr_min": 0.1} for lab in GRID])  # fmt: skip
    return path


def test_load_finds_the_defaults_and_the_families(toy_run):
    ab = A.load(toy_run, "toy")
    assert ab.default == DEFAULT
    assert ab.grid_q == 8
    assert ab.families["alpha"] == [GRID[0], ALPHA_Q[0]]  # α = 0.8, 1.0 at the grid's Q
    assert ab.families["q_normalized"] == [GRID[0], DEFAULT]
    assert ab.table[DEFAULT].comparison is None
    assert "drop" in ab.table[ALPHA_Q[2]].comparison.better  # the weighted coupling drops less
    assert ab.survives(ALPHA_Q[2], "drop")
    assert A.load(None) is None
    assert A.load(toy_run, "no_such_model") is None


def test_tables_mark_separations_and_the_reference(toy_run):
    ab = A.load(toy_run, "toy")
    table = str(A.difference_table(ab))
    assert "(reference)" in table
    assert "✓" in table
    assert A.short(DEFAULT) in table
    iso = str(A.isolated_table(ab))
    assert "<table" in A.isolated_table(ab)._repr_html_()
    assert "seed stability" in iso
    assert "0.700" in iso
    assert "no seed" in iso


def test_ablation_figure_has_a_legend_for_every_marker(toy_run):
    fig = A.ablation_figure(A.load(toy_run, "toy"))
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("Holm" in lab and "excludes 0" in lab for lab in labels)  # filled
    assert any("not after Holm" in lab for lab in labels)  # half-filled
    assert any("not separated" in lab for lab in labels)  # hollow
    assert any("defaults" in lab for lab in labels)
    grid = np.array(fig.axes).reshape(6, 3)  # rows: the metrics (sharing y), columns: the knobs (sharing x)
    assert all(ax.get_ylabel() for ax in grid[:, 0])  # every row labelled
    assert all(ax.get_xlabel() for ax in grid[-1])  # every column labelled
    fig_c, text = A.coverage_figure(A.load(toy_run, "toy"))
    assert "pooled" in str(text)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig_c.axes)


def test_measure_kq_on_a_toy_network():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(12, 5),
    ).eval()  # fmt: skip
    kq = A.measure_kq(net, "1", torch.rand(2, 3, 16, 16), ["a", "b"], ks=[2, 3], qs=[2, 3], n_steps=2)
    assert list(kq.names.values()) == ["K=2, Q=2", "K=2, Q=3", "K=3, Q=2", "K=3, Q=3"]
    assert kq.along_k.shape == (2,)
    assert not kq.testable
    assert "nothing is tested" in str(kq)
    fig = A.kq_figure(kq)
    assert all(ax.get_ylabel() for ax in fig.axes if ax.get_label() != "<colorbar>")


@pytest.fixture(scope="module")
def committed_verdict():
    return A.verdict(COMMITTED)


def test_verdict_on_the_committed_csvs(committed_verdict):
    v = committed_verdict
    labels = [c.label for c in v.claims]
    for family in A.FAMILIES:
        assert [lab for lab in labels if lab.startswith(f"{family}: ")] == [f"{family}: {m}" for m in A.AC.RANKED]
    assert labels[-1] == "rule"
    assert v["rule"].outcome == "reproduced"
    assert len(v.notes) <= 5
    assert v["scissors: drop"].outcome == "contradicted"  # α = 1 drops less than α = 0.8: against the paper
    assert v["scissors: pointing"].outcome == "reproduced"
    assert v["paper form: drop"].outcome == "reproduced"
    for c in v.claims:
        assert (c.outcome == "not separated") == np.isfinite(c.detectable)
    assert "Step" not in str(v)


def _column(path: Path, label: str, metric: str) -> dict[str, float]:
    with path.open(newline="") as fh:
        return {r["image"]: float(r[metric]) for r in csv.DictReader(fh) if r["method"] == label}


def test_verdict_matches_an_independent_recomputation(committed_verdict):
    path = COMMITTED / "alpha_q_efficientnet_lite0.csv"
    a = _column(path, "clustercam:alpha=0.8;clustering=ward;coupling=normalized;n_clusters=8", "drop")
    b = _column(path, "clustercam:alpha=1.0;clustering=ward;coupling=normalized;n_clusters=8", "drop")
    images = sorted(a)
    d = paired_difference([a[i] for i in images], [b[i] for i in images])
    c = committed_verdict["scissors: drop"]
    assert c.n == len(images) == 200
    assert c.value == pytest.approx(100 * d.mean, rel=1e-9)
    assert (c.lo, c.hi) == pytest.approx((100 * d.lo, 100 * d.hi), rel=1e-6)
    assert d.lo > 0
    assert c.outcome == "contradicted"


def test_rule_check_agrees_with_the_defaults():
    check = A.rule_check(COMMITTED)
    assert check.agrees
    assert DEFAULT in check.tied_first
    assert "the same" in str(check)
