"""Chapter 03, the perturbation CAMs (Ablation-CAM, Score-CAM, Group-CAM) and EigenCAM: the
methods at one layer, how alike their maps are, what they cost — forward passes beside measured
time — and the chapter's verdict.

>>> maps = run_all(clf, "bn2", x)  # doctest: +SKIP
>>> fig = cost_figure(read_bench("../benchmarks/results"))  # doctest: +SKIP
>>> verdict("../benchmarks/results", "efficientnet_lite0")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch

from ...core.explanation import Explanation
from ...core.maps import map_correlation
from ...evaluation.harness import read_results
from ...evaluation.stats import as_number, holm, paired_difference
from ..verdict import Claim, Verdict, exact_claim, rows_claim
from ..verdict import verdict as make_verdict

__all__ = ["NAMES", "run_all", "correlations", "read_bench", "BENCH_METHODS", "cost_figure", "verdict"]

NAMES = ("Grad-CAM", "Ablation-CAM", "Score-CAM", "Group-CAM", "EigenCAM")
# camlab's method names in the committed benchmark, and the names the chapter prints
BENCH_METHODS = {"gradcam": "Grad-CAM", "ablationcam": "Ablation-CAM", "scorecam": "Score-CAM", "groupcam": "Group-CAM"}


def run_all(
    clf: Any, layer: str, x: torch.Tensor, score: str = "softmax", n_groups: int = 32
) -> dict[str, Explanation]:
    """Grad-CAM and the four methods of :data:`NAMES` at ``layer`` on ``x`` (each image's top-1
    class; the perturbation methods scored with ``score``, Group-CAM with ``n_groups`` groups)."""
    from ... import methods as m

    built = {
        "Grad-CAM": m.GradCAM(clf, layer),
        "Ablation-CAM": m.AblationCAM(clf, layer, score=score),
        "Score-CAM": m.ScoreCAM(clf, layer, score=score),
        "Group-CAM": m.GroupCAM(clf, layer, n_groups=n_groups, score=score),
        "EigenCAM": m.EigenCAM(clf, layer),
    }
    return {name: method(x) for name, method in built.items()}


def correlations(maps: Mapping[str, Explanation]) -> dict[tuple[str, str], np.ndarray]:
    """Pearson r per image between the heatmaps of every two methods of ``maps`` (in order)."""
    names = list(maps)
    return {
        (a, b): map_correlation(maps[a].heatmaps, maps[b].heatmaps).numpy()
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


def read_bench(committed: str | Path, name: str = "bench_methods_cpu.csv") -> list[dict[str, str]]:
    """The rows of camlab's own implementations in the committed timing benchmark (per image:
    ``seconds``, ``n_forward``; one row per layer and method)."""
    with (Path(committed) / name).open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["implementation"] == "camlab" and r["method"] in BENCH_METHODS]


def _bench(rows: list[dict[str, str]]) -> tuple[list[str], list[str], dict[tuple[str, str], tuple[float, float]]]:
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    methods = [m for m in BENCH_METHODS if any(r["method"] == m for r in rows)]
    value = {(r["layer"], r["method"]): (float(r["n_forward"]), float(r["seconds"])) for r in rows}
    return layers, methods, value


def cost_figure(rows: list[dict[str, str]]):
    """Two panels over the same methods and layers of the committed benchmark (``rows`` from
    :func:`read_bench`): forward passes per image (left) and measured seconds per image (right),
    both on log scales, one bar per layer, each bar labelled with its value."""
    layers, methods, value = _bench(rows)
    device = rows[0]["device"] if rows else "?"
    fig, axes = plt.subplots(
        1, 2, figsize=(11, 0.55 * len(methods) * len(layers) + 1.4), layout="constrained", sharey=True
    )
    pos = np.arange(len(methods))
    h = 0.8 / max(len(layers), 1)
    for k, (ax, label, fmt) in enumerate(
        zip(axes, ["forward passes per image", f"seconds per image ({device})"], ["{:.0f}", "{:.2g} s"], strict=True)
    ):
        for j, layer in enumerate(layers):
            v = [value[layer, m][k] for m in methods]
            bars = ax.barh(pos + h * j, v, height=h, label=f"at {layer}", color=f"C{j}")
            ax.bar_label(bars, [fmt.format(b) for b in v], fontsize=7, padding=2)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (log scale)")
        ax.margins(x=0.25)
    ticks = [
        BENCH_METHODS[m] + ("\n(partial passes: only\nthe layers after the target)" if m == "ablationcam" else "")
        for m in methods
    ]
    axes[0].set_yticks(pos + h * (len(layers) - 1) / 2, ticks)
    axes[0].invert_yaxis()
    axes[0].set_title("what the method asks of the network", fontsize=9)
    axes[1].set_title("what it costs: measured time (committed benchmark)", fontsize=9)
    axes[1].legend(fontsize=8, loc="lower right")
    return fig


def _p(rows: list[dict[str, Any]], method: str, reference: str, metric: str) -> float:
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = r
    images = [i for i in by[method] if i in by[reference]]
    a = [as_number(by[method][i][metric]) for i in images]
    return paired_difference(a, [as_number(by[reference][i][metric]) for i in images]).p


def verdict(committed: str | Path, model: str) -> Verdict:
    """The chapter's verdict from the committed Table 1 run (``<committed>/table1v2_<model>.csv``,
    dev images at the model's default layer) and timing benchmark (``bench_methods_cpu.csv``):
    the paper's Table 1 claims for Score-CAM and Ablation-CAM against Grad-CAM, Group-CAM's claim
    against Score-CAM, whether the class-blind EigenCAM drops confidence as little as Grad-CAM,
    and Ablation-CAM's time against Score-CAM's at about the same number of forward passes. The six
    paired claims are one family: the last sentence gives their largest Holm-adjusted p among the
    claims whose interval lies on one side."""
    rows = read_results(Path(committed) / f"table1v2_{model}.csv")
    pts = {"scale": 100, "unit": "points"}
    spec = [  # label, method, reference, metric, claim, paper, scale
        (
            "Score-CAM drop",
            "scorecam",
            "gradcam",
            "drop",
            "paper Table 1: Score-CAM drops confidence less than Grad-CAM (Score-CAM − Grad-CAM)",
            "12.21 vs 17.94 %",
            pts,
        ),
        (
            "Score-CAM increase",
            "scorecam",
            "gradcam",
            "increase",
            "paper Table 1: Score-CAM increases confidence more often than Grad-CAM (Score-CAM − Grad-CAM)",
            "25.48 vs 19.15 %",
            pts,
        ),
        (
            "Ablation-CAM drop",
            "ablationcam",
            "gradcam",
            "drop",
            "paper Table 1: Ablation-CAM drops confidence less than Grad-CAM (Ablation-CAM − Grad-CAM)",
            "12.38 vs 17.94 %",
            pts,
        ),
        (
            "Ablation-CAM increase",
            "ablationcam",
            "gradcam",
            "increase",
            "paper Table 1: Ablation-CAM increases confidence more often than Grad-CAM (Ablation-CAM − Grad-CAM)",
            "24.67 vs 19.15 %",
            pts,
        ),
        (
            "Group-CAM insertion",
            "groupcam",
            "scorecam",
            "insertion",
            "Zhang et al. 2021: Group-CAM's insertion AUC is higher than Score-CAM's (Group-CAM − Score-CAM)",
            "",
            {},
        ),
        (
            "EigenCAM drop",
            "eigencam",
            "gradcam",
            "drop",
            "the workbook asks: does EigenCAM (Muhammad & Yeasin 2020), blind to the class, drop confidence less "
            "than Grad-CAM? (EigenCAM − Grad-CAM)",
            "",
            pts,
        ),
    ]
    claims: list[Claim] = [
        rows_claim(rows, m, r, k, text, label=label, paper=paper, **extra)
        for label, m, r, k, text, paper, extra in spec
    ]
    adjusted = holm([_p(rows, m, r, k) for _, m, r, k, _, _, _ in spec])
    separated = [p for c, p in zip(claims, adjusted, strict=True) if c.outcome != "not separated"]
    bench = {(r["layer"], r["method"]): r for r in read_bench(committed)}
    layer = json.loads(next(r["params"] for r in rows if r["method"] == "gradcam"))["target_layer"]
    ab, sc = bench[layer, "ablationcam"], bench[layer, "scorecam"]
    ratio = float(sc["seconds"]) / float(ab["seconds"])
    passes = float(sc["n_forward"]) / float(ab["n_forward"])
    claims.append(
        exact_claim(
            "time",
            f"at {layer} Ablation-CAM takes less time than Score-CAM for about as many forward passes "
            f"(Score-CAM's seconds / Ablation-CAM's, {ab['device']}; passes {float(sc['n_forward']):.0f} vs "
            f"{float(ab['n_forward']):.0f})",
            ratio,
            ratio > 1 and abs(passes - 1) < 0.1,
            unit="×",
        )
    )
    c = {x.label: x for x in claims}
    notes = [
        (
            f"The paper's lower drop for Score-CAM and Ablation-CAM than for Grad-CAM is reproduced "
            f"({c['Score-CAM drop'].value:+.1f} and {c['Ablation-CAM drop'].value:+.1f} points), while their higher "
            "increase is not separated.",
            {
                "Score-CAM drop": "reproduced",
                "Ablation-CAM drop": "reproduced",
                "Score-CAM increase": "not separated",
                "Ablation-CAM increase": "not separated",
            },
        ),
        ("Group-CAM's higher insertion than Score-CAM's is not separated.", {"Group-CAM insertion": "not separated"}),
        (
            f"EigenCAM, which ignores the class, drops confidence {c['EigenCAM drop'].value:.0f} points more than "
            "Grad-CAM, not less: the workbook's question is answered no (contradicted).",
            {"EigenCAM drop": "contradicted"},
        ),
        (
            f"Score-CAM takes {ratio:.0f}× as long as Ablation-CAM for about the same pass count, because each "
            "Ablation-CAM pass runs only the layers after the target layer (reproduced).",
            {"time": "reproduced"},
        ),
        (
            f"Taken as one family of {len(spec)} comparisons, the claims whose interval lies on one side keep Holm-"
            f"adjusted sign-flip p ≤ {max(separated):.2g}.",
            {},
        ),
    ]
    return make_verdict(claims, notes)
