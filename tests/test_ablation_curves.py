"""camlab.book.ablation_curves: committed runs read, settings against a reference, the coverage confound."""

import csv
import math

import numpy as np
import pytest
import torch

from camlab.book import ablation_curves as AC

REF = "clustercam:alpha=0.8;clustering=ward;coupling=normalized;n_clusters=10"
MORE = "clustercam:alpha=1.0;clustering=ward;coupling=normalized;n_clusters=8"  # keeps more of the image
SAME = "clustercam:alpha=0.9;clustering=ward;coupling=normalized;n_clusters=8"  # the reference plus noise
FIELDS = [
    "image",
    "class_index",
    "target",
    "method",
    "params",
    "drop",
    "increase",
    "insertion",
    "deletion",
    "coverage",
    "n_forward",
]


def write(path, fields, rows):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


@pytest.fixture
def run_dir(tmp_path):
    """A two-part run: 60 images, 30 tiles. MORE has a lower drop, a higher coverage and a lower
    pointing game than REF on every image; SAME differs from REF by zero-mean noise only."""
    rng = np.random.default_rng(0)
    n, t = 60, 30
    drop, cov, ins, dele = (
        rng.uniform(0.1, 0.5, n),
        rng.uniform(0.2, 0.3, n),
        rng.uniform(0.4, 0.6, n),
        rng.uniform(0.2, 0.3, n),
    )
    noise = rng.normal(0, 0.01, n)
    noise -= noise.mean()  # exactly zero-mean: the paired interval must contain 0

    def rows(label, d, c, i, de):
        return [
            {
                "image": f"img{k}.JPEG",
                "class_index": k,
                "target": k,
                "method": label,
                "params": "{}",
                "drop": d[k],
                "increase": int(k % 3 == 0),
                "insertion": i[k],
                "deletion": de[k],
                "coverage": c[k],
                "n_forward": 11,
            }
            for k in range(n)
        ]

    part1 = rows(REF, drop, cov, ins, dele) + rows(SAME, drop + noise, cov + noise, ins + noise, dele + noise)
    part2 = rows(MORE, drop - 0.1, cov + 0.05, ins + 0.05, dele - 0.05) + rows(
        REF, drop + 1, cov, ins, dele
    )  # REF again: the first part's rows win
    point = rng.uniform(0.8, 0.95, t)
    tiles1 = [
        {
            "composite": k,
            "class_index": 7,
            "label": "x",
            "method": m,
            "mass_inside": p,
            "max_inside": True,
            "coverage": 0.3,
        }
        for k in range(t)
        for m, p in ((REF, point[k]), (SAME, point[k]))
    ]
    tiles2 = [
        {
            "composite": k,
            "class_index": 7,
            "label": "x",
            "method": MORE,
            "mass_inside": point[k] - 0.1,
            "max_inside": True,
            "coverage": 0.4,
        }
        for k in range(t)
    ]
    write(tmp_path / "grid_m.csv", FIELDS, part1)
    write(tmp_path / "alpha_q_m.csv", FIELDS, part2)
    pf = ["composite", "class_index", "label", "method", "mass_inside", "max_inside", "coverage"]
    write(tmp_path / "grid_m_pointing.csv", pf, tiles1)
    write(tmp_path / "alpha_q_m_pointing.csv", pf, tiles2)
    return tmp_path, drop


def test_read_run_counts_each_setting_once(run_dir):
    path, drop = run_dir
    run = AC.read_run([path / "grid_m", path / "alpha_q_m", path / "missing"])
    assert run.labels == [REF, SAME, MORE]
    assert run.n_images == 60
    assert run.n_tiles == 30
    ref_rows = [r for r in run.rows if r["method"] == REF]
    assert len(ref_rows) == 60
    assert float(ref_rows[0]["drop"]) == pytest.approx(drop[0], abs=1e-6)
    assert {t["image"] for t in run.tiles} == {f"{k}/7" for k in range(30)}


def test_find_label_and_setting_of(run_dir):
    run = AC.read_run([run_dir[0] / "grid_m", run_dir[0] / "alpha_q_m"])
    assert AC.find_label(run.labels, alpha=1, n_clusters=8) == MORE  # 1 finds 1.0
    assert AC.setting_of(REF) == {"alpha": 0.8, "clustering": "ward", "coupling": "normalized", "n_clusters": 10}
    with pytest.raises(LookupError, match="2 settings match"):
        AC.find_label(run.labels, n_clusters=8)
    with pytest.raises(LookupError, match="0 settings match"):
        AC.find_label(run.labels, n_clusters=3)


def test_against_pairs_images_and_tiles(run_dir):
    run = AC.read_run([run_dir[0] / "grid_m", run_dir[0] / "alpha_q_m"])
    table = {s.label: s for s in AC.against(run, run.labels, REF)}
    assert table[REF].comparison is None
    assert table[REF].separated == []
    more = table[MORE]
    assert more.comparison.differences["drop"].mean == pytest.approx(-0.1, abs=1e-5)
    assert set(more.comparison.better) == {"drop", "insertion", "deletion"}
    assert more.comparison.worse == ["pointing"]
    assert more.comparison.differences["pointing"].n == 30  # paired over the tiles
    assert more.coverage_difference.mean == pytest.approx(0.05, abs=1e-5)
    assert more.coverage_difference.lo > 0
    assert table[SAME].separated == []  # zero-mean noise: not separated on any metric
    assert table[MORE].means["drop"].lo < table[MORE].means["drop"].mean < table[MORE].means["drop"].hi
    with pytest.raises(ValueError, match="no rows for the reference"):
        AC.against(run, run.labels, "clustercam:n_clusters=99")


def test_holm_adjusted_covers_every_comparison(run_dir):
    run = AC.read_run([run_dir[0] / "grid_m", run_dir[0] / "alpha_q_m"])
    table = AC.against(run, run.labels, REF)
    adjusted = AC.holm_adjusted(table)
    assert set(adjusted) == {(lab, m) for lab in (SAME, MORE) for m in AC.RANKED}  # the reference has no comparison
    raw = {(s.label, m): d.p for s in table if s.comparison for m, d in s.comparison.differences.items()}
    assert all(adjusted[k] >= raw[k] or math.isnan(raw[k]) for k in adjusted)  # Holm never lowers a p
    assert all(
        adjusted[k] <= min(1.0, len(raw) * raw[k]) + 1e-12 for k in adjusted if not math.isnan(raw[k])
    )  # at most Bonferroni's
    assert (
        adjusted[(MORE, "drop")] <= len(raw) * 2 / 10_000
    )  # the smallest p 9 999 sign flips give, times Bonferroni's bound
    assert adjusted[(SAME, "drop")] > 0.05
    assert adjusted[(SAME, "increase")] == 1.0  # every difference 0


def test_coverage_correlation_follows_the_settings(run_dir):
    run = AC.read_run([run_dir[0] / "grid_m", run_dir[0] / "alpha_q_m"])
    r = AC.coverage_correlation(run, "drop", n_resamples=300)
    means_cov = [np.mean([float(x["coverage"]) for x in run.rows if x["method"] == m]) for m in run.labels]
    means_drop = [np.mean([float(x["drop"]) for x in run.rows if x["method"] == m]) for m in run.labels]
    assert r.mean == pytest.approx(np.corrcoef(means_cov, means_drop)[0, 1])
    assert r.mean < -0.9
    assert r.n == 3
    by_images = AC.coverage_correlation(run, "pointing", resample="images", n_resamples=300)
    assert by_images.mean < -0.9
    assert by_images.lo <= by_images.hi < -0.9
    with pytest.raises(ValueError, match="resample"):
        AC.coverage_correlation(run, "drop", resample="tiles")


def test_axis_agreement_finds_the_knob_that_moves_the_maps():
    gen = torch.Generator().manual_seed(0)
    base = {a: torch.rand(2, 8, 8, generator=gen) for a in (1, 2, 3)}  # the first knob changes the map
    maps = {
        (a, b): base[a] + 0.01 * b * torch.rand(2, 8, 8, generator=gen) for a in (1, 2, 3) for b in (4, 5)
    }  # the second barely does
    first, second = AC.axis_agreement(maps)
    assert first.shape == (2,)
    assert np.all(first < 0.5)
    assert np.all(second > 0.99)
    flat = {(1, 4): torch.zeros(1, 4, 4), (2, 4): torch.rand(1, 4, 4, generator=gen)}  # a constant map: no pair left
    f, s = AC.axis_agreement(flat)
    assert math.isnan(f[0])
    assert math.isnan(s[0])


def test_measure_settings_on_a_toy_network():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 12, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(12, 5),
    ).eval()
    x = torch.rand(2, 3, 16, 16)
    settings = {"Q=2": {"n_clusters": 2, "clustering": "ward"}, "Q=3": {"n_clusters": 3, "clustering": "ward"}}
    maps, run = AC.measure_settings(net, "1", x, settings, metrics=["drop", "coverage"], n_steps=2, images=["a", "b"])
    assert list(maps) == ["Q=2", "Q=3"]
    assert maps["Q=2"].shape == (2, 16, 16)
    assert run.labels == ["Q=2", "Q=3"]
    assert run.n_images == 2
    assert not run.tiles
    assert {"drop", "coverage"} <= set(run.rows[0])
    assert "deletion" not in run.rows[0]
    assert [r["n_forward"] for r in run.rows if r["method"] == "Q=3"] == [
        4,
        4,
    ]  # 1 + Q passes per image for this setting alone
    assert run.rows[0]["coverage"] == pytest.approx(float(maps["Q=2"][0].mean()), abs=1e-5)
