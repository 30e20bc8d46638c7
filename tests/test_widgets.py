"""The interactive Cluster-CAM: callbacks driven without a browser, and what they cost."""

import matplotlib.pyplot as plt
import pytest
import torch

import camlab
from camlab.methods.cluster import DEFAULTS
from camlab.widgets import HEADLESS, ClusterExplorer

Q = DEFAULTS["n_clusters"]


@pytest.fixture
def explorer(lite0, real_batch, monkeypatch):
    monkeypatch.delenv(HEADLESS, raising=False)  # `make test` sets it for the notebooks
    return ClusterExplorer(lite0.module, real_batch[:1], "blocks.6")


def test_explorer_matches_clustercam(lite0, real_batch, explorer):
    direct = camlab.ClusterCAM(lite0.module, "blocks.6")(real_batch[:1])
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    assert explorer.image_forwards == 1 and explorer.masked_forwards == Q


def test_sliders_recompute_with_the_promised_cost(lite0, real_batch, explorer):
    image = lite0.unnormalize(real_batch[0])
    box = explorer.widget(image, categories=lite0.categories)
    c = explorer.controls
    assert box.children and c["n_clusters"].value == Q
    assert c["clustering"].options == ("kmeans", "spectral", "ward") and c["coupling"].options == ("normalized", "paper", "weighted")

    calls = []
    handle = lite0.module.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    maps = {}
    try:
        c["alpha"].value = 0.3  # α: no forward pass at all
        for coupling in ("paper", "weighted", "normalized"):  # nor the coupling
            c["coupling"].value = coupling
            maps[coupling] = explorer.explanation.heatmaps
            assert c["alpha"].disabled == (coupling == "weighted")
    finally:
        handle.remove()
    assert not calls and explorer.masked_forwards == Q and explorer.settings["alpha"] == 0.3
    for coupling, heat in maps.items():
        direct = camlab.ClusterCAM(lite0.module, "blocks.6", alpha=0.3, coupling=coupling)(real_batch[:1])
        assert torch.allclose(heat, direct.heatmaps, atol=1e-5)

    c["n_clusters"].value = 4  # Q: at most Q masked passes
    assert Q < explorer.masked_forwards <= Q + 4 and explorer.explanation.cluster_maps.shape[1] == 4

    c["clustering"].value = "spectral"
    before = explorer.masked_forwards
    c["n_eigvecs"].value = 5  # K: no pass of the image, the decomposition reused
    spectra = dict(explorer.fitted.cache.spectra)
    c["n_eigvecs"].value = 3
    c["n_eigvecs"].value = 5  # back to a K already seen: every cluster is cached
    assert len(spectra) == 1 and explorer.fitted.cache.spectra == spectra
    assert explorer.image_forwards == 1
    assert explorer.masked_forwards <= before + 2 * 4
    direct = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, clustering="spectral", n_eigvecs=5, alpha=0.3)(real_batch[:1])
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)

    c["clustering"].value = "ward"  # seed-free: the same map as a direct call
    assert c["n_eigvecs"].disabled
    direct = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, clustering="ward", alpha=0.3)(real_batch[:1])
    assert torch.equal(explorer.explanation.labels, direct.labels)
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    plt.close("all")


def test_explorer_errors(lite0, real_batch, explorer):
    with pytest.raises(ValueError, match="one image at a time"):
        ClusterExplorer(lite0.module, real_batch, "blocks.6")
    with pytest.raises(ValueError, match="cannot change 'seed'"):
        explorer.update(seed=2)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        explorer.update(alpha=2.0)
    fig = explorer.figure(lite0.unnormalize(real_batch[0]))
    assert len(fig.axes) == 2 * (Q + 1)
    plt.close("all")


def test_headless_runs_make_no_widget(lite0, real_batch, explorer, monkeypatch, capsys):
    """With no front end (CAMLAB_HEADLESS, set by the project's notebook runs) the explorer makes
    no widget — widget comms can stall nbclient for good — and its figure still draws."""
    import ipywidgets

    monkeypatch.setenv(HEADLESS, "1")
    made = []
    monkeypatch.setattr(ipywidgets.Widget, "open", lambda self: made.append(self))
    assert explorer.widget(lite0.unnormalize(real_batch[0])) is None and not made
    assert "sliders are skipped" in capsys.readouterr().out
    assert len(explorer.figure(lite0.unnormalize(real_batch[0])).axes) == 2 * (Q + 1)
    monkeypatch.setenv(HEADLESS, "0")
    assert explorer.widget(lite0.unnormalize(real_batch[0])) is not None and made
    plt.close("all")
