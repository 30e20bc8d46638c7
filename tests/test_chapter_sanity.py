"""camlab.book.chapters.sanity: the committed run read once, the figures and tables on toy rows,
why maps go flat on a toy network, and the chapter's verdict on the committed CSVs, one claim
recomputed independently."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from camlab.book.chapters import sanity as C
from camlab.evaluation.stats import mean_interval, paired_difference

COMMITTED = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
BLOCKS = ["classifier", "bn2", "blocks.6"]


def toy_run(n_images: int = 4) -> C.SanityRun:
    """Three methods over three steps: "a" falls to 0, "b" stays at 1, "c" goes flat."""
    rows = []
    for mode in ("cascading", "independent"):
        for s, block in enumerate(["", *BLOCKS]):
            for i in range(n_images):
                for m, rho, flat in (("a", 1.0 if s == 0 else 0.05 * i, False), ("b", 1.0, False),
                                     ("c", 1.0 if s == 0 else 0.0, s > 0)):  # fmt: skip
                    rows.append({"method": m, "mode": mode, "step": str(s), "block": block, "image": f"im{i}",
                                 "spearman": str(rho), "ssim": "0.5", "hog": "0.2", "constant": str(flat)})  # fmt: skip
    logit = [{"method": m, "image": f"im{i}", "spearman": str(0.1 * i)} for m in "abc" for i in range(n_images)]
    return C.SanityRun(rows, logit, ["a", "b", "c"], {"a": ["a2"], "b": [], "c": []})


def test_short_block_names():
    assert [C.short_block(b) for b in ["", "classifier", "blocks.6", "conv_head", "bn2"]] == [
        "none", "clf", "b6", "head", "bn2"]  # fmt: skip


def test_toy_run_properties_and_flat_shares():
    run = toy_run()
    assert (run.n_images, run.full_step, run.blocks) == (4, 3, ["", *BLOCKS])
    assert run.named("a") == "a (= a2)"
    assert run.named("b") == "b"
    assert C.flat_shares(run, "independent") == pytest.approx({b: 1 / 3 for b in BLOCKS})


def test_figures_on_a_toy_run():
    run = toy_run()
    fig = C.cascade_panels(run, reference="b", ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a (= a2)", "b", "c"]  # one panel per method, the first slot the key
    assert fig.axes[1].get_ylabel()  # the first method's panel, beside the key
    assert fig.axes[2].get_ylabel()  # the first column
    fig2 = C.independent_heatmap(run)
    texts = [t.get_text() for t in fig2.axes[0].texts]
    assert texts.count("flat") == 3
    assert fig2.axes[0].get_xlabel()
    plt.close("all")


def test_step_means_and_map_grid():
    live = {"m": [{"step": s, "image": i, "spearman": 1.0 - 0.5 * s, "constant": s == 2,
                   "heatmap": torch.rand(8, 8)} for s in range(3) for i in range(2)]}  # fmt: skip
    text = C.step_means(live, ["classifier", "bn2"])
    assert text.splitlines()[1].split() == ["m", "1.00", "0.50", "0.00"]
    fig = C.map_grid(live, torch.rand(3, 8, 8), ["classifier", "bn2"], steps=(0, 1, 2, 5))
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3  # step 5 is past the last block
    plt.close("all")


def test_zeroed_activations_on_a_toy_network():
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    net.add_module("relu", nn.ReLU())
    clf = SimpleNamespace(module=net.eval())
    out = C.zeroed_activations(clf, "conv", "relu", torch.rand(2, 3, 8, 8), seed=0)
    assert set(out) == {"zero_trained", "zero_reset", "constant_channels"}
    assert all(0.0 <= v <= 1.0 for v in out.values())


def test_claims_leave_mostly_flat_methods_unjudged():
    cs = {c.label: c for c in C.claims(toy_run(8)) if c.label in "abc"}
    assert cs["a"].outcome == "reproduced"
    assert cs["b"].outcome == "contradicted"
    assert cs["c"].outcome == "not separated"
    assert cs["c"].n == 0


@pytest.fixture(scope="module")
def committed_run():
    return C.load(COMMITTED)


def test_load_the_committed_run(committed_run):
    run = committed_run
    assert run.n_images == 50
    assert run.full_step == 12
    assert run.twins["gradcam"] == ["xgradcam", "hirescam", "cam"]
    assert run.twins["gradcampp"] == ["smoothgradcampp"]
    assert "sobel" in run.methods
    assert "cam" not in run.methods
    assert len(run.methods) == 11
    table = C.full_randomisation_table(run)
    assert len(table.splitlines()) == 1 + len(run.methods)


def test_verdict_on_the_committed_csvs(committed_run):
    v = C.verdict(COMMITTED)
    labels = [c.label for c in v.claims]
    assert labels[: len(committed_run.methods)] == committed_run.methods
    assert {"|ρ| clustercam", "|ρ| eigencam", "logit"} <= set(labels)
    assert v["sobel"].outcome == "contradicted"
    assert v["clustercam"].outcome == v["gradcam"].outcome == "reproduced"
    assert v["gradcampp"].outcome == "not separated"
    assert np.isfinite(v["gradcampp"].detectable)
    for m in ("groupcam", "ablationcam", "scorecam", "clustercam:coupling=weighted"):
        assert v[m].outcome == "not separated"
        assert v[m].n == 0
    assert 1 <= len(v.notes) <= 5
    assert "<table" in v._repr_html_()
    # independent recomputation: the random-logit difference, Cluster-CAM − Grad-CAM, paired per image
    logit = {m: {r["image"]: float(r["spearman"]) for r in committed_run.logit if r["method"] == m}
             for m in ("clustercam", "gradcam")}  # fmt: skip
    images = sorted(logit["clustercam"])
    d = paired_difference([logit["clustercam"][i] for i in images], [logit["gradcam"][i] for i in images])
    assert v["logit"].value == pytest.approx(d.mean)
    assert v["logit"].hi == pytest.approx(d.hi, abs=1e-3)
    assert (v["logit"].outcome == "reproduced") == (d.hi < 0)
    rho = [float(r["spearman"]) for r in committed_run.at("clustercam", "cascading", 12)]
    iv = mean_interval(rho)
    assert v["clustercam"].value == pytest.approx(iv.mean)
    assert iv.hi < C.THRESHOLD
