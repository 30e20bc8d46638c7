"""Paths the other tests do not reach: the non-finite heatmap guard, every baseline form, the
timing helper and notebook stripping."""

import json

import pytest
import torch
from camlab.masking import apply_masks, blur, make_baseline, score_masked
from toys import ConstantFeatures

from camlab.book.notebooks import strip_outputs
from camlab.evaluation.timing import time_call
from camlab.methods.base import BaseCAM


class NaNCAM(BaseCAM):
    """A broken method: its map is NaN."""

    name = "nancam"

    def compute(self, ctx):
        return torch.full(ctx.activations.shape[:1] + ctx.activations.shape[2:], float("nan"))


def test_a_non_finite_heatmap_is_caught_and_no_hook_stays():
    model = ConstantFeatures(1.0).eval()
    with pytest.raises(RuntimeError, match="NaNCAM produced a non-finite heatmap"):
        NaNCAM(model, "features")(torch.randn(1, 3, 16, 16))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_every_baseline_form():
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(make_baseline(x, "zeros"), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, None), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, "blur"), blur(x))
    assert torch.equal(make_baseline(x, 0.25), torch.full_like(x, 0.25))
    colour = torch.tensor([0.1, -0.2, 0.3]).view(3, 1, 1)
    assert torch.equal(make_baseline(x, colour), colour.expand_as(x))  # a tensor broadcasts
    with pytest.raises(ValueError, match=r"a baseline tensor of shape \(2,\) does not broadcast"):
        make_baseline(x, torch.zeros(2))
    with pytest.raises(TypeError, match="baseline must be"):
        make_baseline(x, [0.0])
    # score_masked with a float baseline: X ⊙ M + X_b ⊙ (1 − M), scored by the model
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5)
    ).eval()
    masks = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1))
    owner, t = torch.tensor([0, 1, 1]), torch.tensor([2, 4])
    got = score_masked(model, x, masks, owner, t, baseline=0.25, normalize=False)
    with torch.no_grad():
        direct = torch.stack(
            [
                model(apply_masks(x[o], masks[k : k + 1], torch.full_like(x[o], 0.25)))[0].softmax(0)[t[o]]
                for k, o in enumerate(owner.tolist())
            ]
        )
    assert torch.allclose(got, direct, atol=1e-6)


def test_time_call_counts_and_takes_the_median():
    calls = []
    res = time_call(lambda: calls.append(1) or len(calls), repeats=5, warmup=2)
    assert len(calls) == 7
    assert res.result == 7
    assert len(res.all_seconds) == 5
    assert res.seconds == sorted(res.all_seconds)[2]
    assert res.peak_memory_mb is None
    with pytest.raises(ValueError, match="repeats must be ≥ 1, got 0"):
        time_call(lambda: None, repeats=0)


def test_strip_outputs(tmp_path):
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "1+1",
                "outputs": [{"output_type": "execute_result", "data": {"text/plain": "2"}}],
                "execution_count": 3,
                "metadata": {"papermill": {"duration": 1}},
            },
            {"cell_type": "markdown", "source": "# t", "metadata": {}},
        ],
        "metadata": {"papermill": {"parameters": {}}, "kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert strip_outputs(path) is True
    out = json.loads(path.read_text())
    assert out["cells"][0]["outputs"] == []
    assert out["cells"][0]["execution_count"] is None
    assert "papermill" not in out["cells"][0]["metadata"]
    assert "papermill" not in out["metadata"]
    assert out["metadata"]["kernelspec"] == {"name": "python3"}
    assert out["cells"][1]["source"] == "# t"
    assert strip_outputs(path) is False  # already stripped: unchanged


def test_kernel_environment_is_scoped_and_yields_to_the_user(monkeypatch):
    import subprocess
    import sys

    from camlab.book import notebooks as N

    for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "CAMLAB_KERNEL_ENV"):
        monkeypatch.delenv(k, raising=False)
    assert N.kernel_environment() == N.KERNEL_ENV
    assert N.KERNEL_ENV
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert N.kernel_environment() == {}  # the user's own OpenMP setting wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("CAMLAB_KERNEL_ENV", "0")
    assert N.kernel_environment() == {}
    # importing camlab changes nothing in the environment
    code = (
        "import os, camlab, camlab.book.notebooks; "
        "print(any(k in os.environ for k in ('OMP_WAIT_POLICY', 'OMP_NUM_THREADS', 'GOMP_SPINCOUNT')))"
    )
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")
    }
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()
        == "False"
    )


def test_timing_summary_pairs_images_and_counts_passes_apart():
    from camlab.evaluation.timing import timing_summary, timing_table

    rows = [
        {"method": "a", "image": "i1", "seconds": "2", "full_passes": "1", "partial_passes": "10"},
        {"method": "a", "image": "i2", "seconds": "4", "full_passes": "1", "partial_passes": "20"},
        {"method": "clustercam", "image": "i1", "seconds": "1", "full_passes": "7", "partial_passes": "0"},
        {"method": "clustercam", "image": "i2", "seconds": "1", "full_passes": "7", "partial_passes": "0"},
    ]
    a = timing_summary(rows)[0]
    assert a["method"] == "a"
    assert a["seconds"].mean == 3.0
    assert a["ratio"].mean == 3.0
    assert a["full_passes"] == 1.0
    assert a["partial_passes"] == 15.0
    assert a["n_images"] == 2
    assert "| a | 3.0000" in timing_table(rows)
    with pytest.raises(ValueError, match="no row for 1 image"):
        timing_summary(rows[1:])
    with pytest.raises(ValueError, match="reference method 'x'"):
        timing_summary(rows, reference="x")


def test_progress_bars_are_off_where_nobody_watches(monkeypatch):
    """An executed notebook would keep a bar frozen at "0 %": headless runs get none."""
    from camlab.core.progress import HEADLESS, progress

    items = [1, 2, 3]
    monkeypatch.setenv(HEADLESS, "1")
    assert progress(items, desc="x") is items
    monkeypatch.setenv(HEADLESS, "0")
    bar = progress(items, desc="x")
    assert bar is not items
    assert list(bar) == items
    assert hasattr(bar, "set_postfix_str")
    assert progress(items, desc="x", enabled=False) is items
