"""The numbers README's claims section quotes are the ones the committed CSVs give.

Each claim recomputes a mean (or a paired difference) with its 95 % interval from the
per-image CSVs in ``benchmarks/results`` and looks for it in README.md, formatted to the digits
the README uses (signs and the Unicode minus ignored). A rerun that moves a number, or a README
edit that types another one, fails here until the two agree again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from camlab.evaluation.harness import read_results
from camlab.evaluation.stats import as_number, mean_interval, paired_difference

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("−", "-").replace("+", ""))


README = _normalised((ROOT / "README.md").read_text(encoding="utf-8"))


def quoted(iv, digits: int, scale: float = 1.0) -> str:
    """An interval as the README writes it: ``mean [lo, hi]``."""
    return _normalised(f"{scale * iv.mean:.{digits}f} [{scale * iv.lo:.{digits}f}, {scale * iv.hi:.{digits}f}]")


def difference(csv_name: str, method: str, reference: str, metric: str):
    rows = read_results(RESULTS / csv_name)
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = as_number(r[metric])
    images = sorted(by[reference])
    return paired_difference([by[method][i] for i in images], [by[reference][i] for i in images])


def sanity_mean(method: str, column: str = "spearman", csv_name: str = "sanity_efficientnet_lite0.csv"):
    rows = read_results(RESULTS / csv_name, complete=False)
    if "step" in rows[0]:  # the cascading run with every block random: its last step
        rows = [r for r in rows if r["mode"] == "cascading"]
        last = max(int(r["step"]) for r in rows)
        rows = [r for r in rows if int(r["step"]) == last]
    return mean_interval([float(r[column]) for r in rows if r["method"] == method])


KMEANS8 = "clustercam:alpha=0.8;clustering=kmeans;coupling=normalized;n_clusters=8"
CLAIMS = {
    # Table 1 on 200 images (Step 8), percentage points
    "lite0 drop, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1_efficientnet_lite0.csv", "clustercam", "gradcam", "drop"), 1, 100
    ),
    "lite0 drop, K-means Q = 8 − Grad-CAM": lambda: quoted(
        difference("table1_efficientnet_lite0.csv", KMEANS8, "gradcam", "drop"), 1, 100
    ),
    "lite0 increase, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1_efficientnet_lite0.csv", "clustercam", "gradcam", "increase"), 1, 100
    ),
    "lite2 drop, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1_efficientnet_lite2.csv", "clustercam", "gradcam", "drop"), 1, 100
    ),
    "lite2 increase, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1_efficientnet_lite2.csv", "clustercam", "gradcam", "increase"), 1, 100
    ),
    "lite2 drop, Cluster-CAM − Score-CAM": lambda: quoted(
        difference("table1_efficientnet_lite2.csv", "clustercam", "scorecam", "drop"), 1, 100
    ),
    "lite2 drop, Cluster-CAM − Group-CAM": lambda: quoted(
        difference("table1_efficientnet_lite2.csv", "clustercam", "groupcam", "drop"), 1, 100
    ),
    # the sanity checks (Step 10)
    "sanity: Cluster-CAM, all blocks random": lambda: quoted(sanity_mean("clustercam"), 2),
    "sanity: Grad-CAM, all blocks random": lambda: quoted(sanity_mean("gradcam"), 2),
    "sanity: Grad-CAM++, all blocks random": lambda: quoted(sanity_mean("gradcampp"), 2),
    "sanity: Cluster-CAM |Spearman|": lambda: quoted(sanity_mean("clustercam", "spearman_abs"), 2),
    "sanity: Grad-CAM |Spearman|": lambda: quoted(sanity_mean("gradcam", "spearman_abs"), 2),
    "random logit: Cluster-CAM": lambda: quoted(
        sanity_mean("clustercam", csv_name="random_logit_efficientnet_lite0.csv"), 2
    ),
    "random logit: Grad-CAM": lambda: quoted(sanity_mean("gradcam", csv_name="random_logit_efficientnet_lite0.csv"), 2),
    "random logit: Score-CAM": lambda: quoted(
        sanity_mean("scorecam", csv_name="random_logit_efficientnet_lite0.csv"), 2
    ),
    "random logit: Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("random_logit_efficientnet_lite0.csv", "clustercam", "gradcam", "spearman"), 2
    ),
    # Table 1 with every metric (Step 10)
    "ROAD, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite0.csv", "clustercam", "gradcam", "road"), 3
    ),
    "ROAD, Cluster-CAM − Score-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite0.csv", "clustercam", "scorecam", "road"), 3
    ),
    "gain, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite0.csv", "clustercam", "gradcam", "gain"), 1, 100
    ),
    "lite2 ROAD, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite2.csv", "clustercam", "gradcam", "road"), 3
    ),
    "lite2 ROAD, Cluster-CAM − Score-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite2.csv", "clustercam", "scorecam", "road"), 3
    ),
    "lite2 gain, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite2.csv", "clustercam", "gradcam", "gain"), 1, 100
    ),
    "lite2 Step 10 drop, Cluster-CAM − Grad-CAM": lambda: quoted(
        difference("table1v2_efficientnet_lite2.csv", "clustercam", "gradcam", "drop"), 1, 100
    ),
}


def test_readme_inverted_maps_against_grad_cam():
    """README: Cluster-CAM's ρ below −0.3 on N of the 50 images at full randomisation, Grad-CAM's on M,
    and the paired differences of |ρ| and of that share, Cluster-CAM − Grad-CAM."""
    rows = [
        r for r in read_results(RESULTS / "sanity_efficientnet_lite0.csv", complete=False) if r["mode"] == "cascading"
    ]
    last = max(int(r["step"]) for r in rows)
    rho = {
        m: {r["image"]: float(r["spearman"]) for r in rows if r["method"] == m and int(r["step"]) == last}
        for m in ("clustercam", "gradcam")
    }
    images = sorted(rho["gradcam"])
    below = {m: sum(v < -0.3 for v in rho[m].values()) for m in rho}
    assert _normalised(f"below −0.3 on {below['clustercam']} of the {len(images)} images") in README
    assert _normalised(f"with {below['gradcam']} (paired over the {len(images)} images") in README
    c, g = ([rho[m][i] for i in images] for m in ("clustercam", "gradcam"))
    absolute = paired_difference([abs(v) for v in c], [abs(v) for v in g])
    share = paired_difference([v < -0.3 for v in c], [v < -0.3 for v in g])
    assert f"|ρ| {quoted(absolute, 2)}, share below -0.3 {quoted(share, 2)}" in README


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_readme_quotes_the_committed_csvs(claim):
    expected = CLAIMS[claim]()
    assert expected in README, f"README should quote {claim} as {expected!r} (from the committed CSVs)"


def test_readme_image_count_of_the_step_10_run():
    n = len({r["image"] for r in read_results(RESULTS / "table1v2_efficientnet_lite0.csv")})
    assert (f"on all {n} dev images" if n >= 200 else f"on {n} of the 200 dev images") in README


def _ordinal(k: int) -> str:
    return f"{k}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(k if k < 20 else k % 10, 'th') }"


@pytest.mark.parametrize(
    ("model", "wording"),
    [
        ("efficientnet_lite0", "ranks {d} of {n} distinct methods, at equal area {a}"),
        ("efficientnet_lite2", "ranks {d} of {n}, at equal area {last}({a})"),
    ],
)
def test_readme_ranks_at_equal_area(model, wording):
    """README's ranks of Cluster-CAM by the drop and at equal area (top 20 %), recomputed as
    notebook 07 counts and ranks the methods (camlab.book.verdict)."""
    from camlab.book.verdict import counted_once, rank_by_mean

    rows = read_results(RESULTS / f"table1v2_{model}.csv")
    kept = [m for m in counted_once(rows)[0] if m != "sobel"]
    by_drop, at_area = (rank_by_mean(rows, m, kept).index("clustercam") + 1 for m in ("drop", "drop_top20"))
    last = "last " if at_area == len(kept) else ""
    assert _normalised(wording.format(d=_ordinal(by_drop), n=len(kept), a=_ordinal(at_area), last=last)) in README
