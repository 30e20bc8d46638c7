"""The interactive Cluster-CAM: callbacks driven without a browser, and what they cost."""

import matplotlib.pyplot as plt
import pytest
import torch

import camlab
from camlab.book.widgets import HEADLESS, SLIDERS, ClusterExplorer, target_caption
from camlab.methods.cluster import DEFAULTS

Q = DEFAULTS["n_clusters"]


@pytest.fixture
def explorer(lite0, real_batch, monkeypatch):
    monkeypatch.delenv(HEADLESS, raising=False)  # `make test` sets it for the notebooks
    return ClusterExplorer(lite0.module, real_batch[:1], "blocks.6")


@pytest.fixture
def two_images(lite0, real_batch, monkeypatch):
    """An explorer over two images of different sizes: a photo and a two-tile composite."""
    monkeypatch.delenv(HEADLESS, raising=False)
    composite = torch.cat([real_batch[1:2], real_batch[2:3]], dim=-1)  # 224×448: the cat beside the towel
    return ClusterExplorer(
        lite0.module, [real_batch[:1], composite], "blocks.6", names=["tench", "cat | towel"], top_k=3
    )


class PassCounter:
    """Every image pushed through the model while it is open (the explorers here are built on the
    bare module, so every pass goes through it; on a Classifier they would go through its twin)."""

    def __init__(self, module):
        self.module, self.images = module, []

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(lambda m, a: self.images.append(a[0].shape[0]))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_explorer_matches_clustercam(lite0, real_batch, explorer):
    direct = camlab.ClusterCAM(lite0.module, "blocks.6")(real_batch[:1])
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    assert explorer.image_forwards == 1
    assert explorer.masked_forwards == Q
    assert explorer.target == int(direct.targets[0]) == explorer.settings["target"]


def test_sliders_recompute_with_the_promised_cost(lite0, real_batch, explorer):
    image = lite0.unnormalize(real_batch[0])
    box = explorer.widget(image, categories=lite0.categories)
    c = explorer.controls
    assert box.children
    assert c["n_clusters"].value == Q
    assert c["clustering"].options == ("kmeans", "spectral", "ward")
    assert c["coupling"].options == (
        "normalized",
        "paper",
        "weighted",
    )
    # the sliders act when released, not on every step of a drag (each step would refit)
    assert all(c[name].continuous_update is False for name in SLIDERS)

    maps = {}
    with PassCounter(lite0.module) as calls:
        c["alpha"].value = 0.3  # α: no forward pass at all
        for coupling in ("paper", "weighted", "normalized"):  # nor the coupling
            c["coupling"].value = coupling
            maps[coupling] = explorer.explanation.heatmaps
            assert c["alpha"].disabled == (coupling == "weighted")
    assert not calls.images
    assert explorer.masked_forwards == Q
    assert explorer.settings["alpha"] == 0.3
    for coupling, heat in maps.items():
        direct = camlab.ClusterCAM(lite0.module, "blocks.6", alpha=0.3, coupling=coupling)(real_batch[:1])
        assert torch.allclose(heat, direct.heatmaps, atol=1e-5)

    c["n_clusters"].value = 4  # Q: at most Q masked passes
    assert Q < explorer.masked_forwards <= Q + 4
    assert explorer.explanation.cluster_maps.shape[1] == 4

    c["clustering"].value = "spectral"
    before = explorer.masked_forwards
    c["n_eigvecs"].value = 5  # K: no pass of the image, the decomposition reused
    spectra = dict(explorer.fitted.cache.spectra)
    c["n_eigvecs"].value = 3
    c["n_eigvecs"].value = 5  # back to a K already seen: every cluster is cached
    assert len(spectra) == 1
    assert explorer.fitted.cache.spectra == spectra
    assert explorer.image_forwards == 1
    assert explorer.masked_forwards <= before + 2 * 4
    direct = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, clustering="spectral", n_eigvecs=5, alpha=0.3)(
        real_batch[:1]
    )
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)

    c["clustering"].value = "ward"  # seed-free: the same map as a direct call
    assert c["n_eigvecs"].disabled
    direct = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4, clustering="ward", alpha=0.3)(real_batch[:1])
    assert torch.equal(explorer.explanation.labels, direct.labels)
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    plt.close("all")


def test_the_target_menu_switches_the_class_at_the_price_of_new_scores(lite0, real_batch, explorer):
    """Feng et al. 2023, Figs. 3–4: base and scissors depend on the class explained. Switching
    the target refits with the new class's scores (Q masked passes, no pass of the image); a
    target seen before costs nothing; each map is the direct call's for that class."""
    box = explorer.widget(lite0.unnormalize(real_batch[0]), categories=lite0.categories)
    menu = explorer.controls["target"]
    offered = explorer.classes()
    assert [v for _, v in menu.options] == [k for k, _ in offered]
    assert len(offered) == 5
    probs = [p for _, p in offered]
    assert probs == sorted(probs, reverse=True)
    assert menu.value == offered[0][0] == explorer.target
    assert all(f"(p = {p:.2f})" in label for (label, _), p in zip(menu.options, probs, strict=True))
    first = explorer.explanation

    seen = {}
    for k, (cls, _) in enumerate(offered):
        before = explorer.masked_forwards
        with PassCounter(lite0.module) as calls:
            menu.value = cls
        e = explorer.explanation
        assert int(e.targets[0]) == cls == explorer.target
        assert (
            sum(calls.images) == explorer.masked_forwards - before == (0 if k == 0 else Q)
        )  # new scores only; no image pass
        assert explorer.image_forwards == 1
        direct = camlab.ClusterCAM(lite0.module, "blocks.6")(real_batch[:1], targets=[cls])
        assert torch.equal(e.labels, direct.labels)
        assert torch.allclose(e.cluster_scores, direct.cluster_scores, atol=1e-5)
        assert (int(e.base[0]), int(e.scissors[0])) == (int(direct.base[0]), int(direct.scissors[0]))
        assert torch.allclose(e.heatmaps, direct.heatmaps, atol=1e-5)
        seen[cls] = (int(e.base[0]), int(e.scissors[0]), e.heatmaps)
        assert f"base = cluster {seen[cls][0]}" in explorer.readout(lite0.categories)
    # the paper's point: another class, other extremes (on this photo the five classes do not all agree)
    assert len({v[:2] for v in seen.values()}) > 1
    assert not torch.allclose(seen[offered[0][0]][2], seen[offered[1][0]][2], atol=1e-3)

    done = explorer.masked_forwards
    with PassCounter(lite0.module) as calls:
        menu.value = offered[0][0]  # back to a class already explained: free, and the same map
        explorer.controls["alpha"].value = 0.5  # α on a switched target: still free
    assert not calls.images
    assert explorer.masked_forwards == done
    assert torch.allclose(
        explorer.explanation.heatmaps,
        camlab.ClusterCAM(lite0.module, "blocks.6", alpha=0.5)(real_batch[:1]).heatmaps,
        atol=1e-5,
    )
    assert torch.equal(explorer.explanation.base, first.base)

    explorer.controls["n_clusters"].value = 6  # Q on a switched target refits that target only
    cls = offered[1][0]
    menu.value = cls  # its stored fit has the old Q: refitted on the same scores' pass, Q = 6
    direct = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=6, alpha=0.5)(real_batch[:1], targets=[cls])
    assert explorer.image_forwards == 1
    assert explorer.explanation.cluster_maps.shape[1] == 6
    assert torch.allclose(explorer.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    assert box.children
    plt.close("all")


def test_the_image_menu(lite0, real_batch, two_images):
    ex = two_images
    composite = torch.cat([real_batch[1:2], real_batch[2:3]], dim=-1)
    shown = [lite0.unnormalize(real_batch[0]), lite0.unnormalize(composite)[0]]
    ex.widget(shown, categories=lite0.categories)
    c = ex.controls
    assert [v for _, v in c["image"].options] == [0, 1]
    assert [n for n, _ in c["image"].options] == [
        "tench",
        "cat | towel",
    ]
    first_menu = [v for _, v in c["target"].options]
    assert ex.image_forwards == 1
    assert ex.masked_forwards == Q

    c["image"].value = 1  # a new image: one pass of it, its top class, its own target menu
    direct = camlab.ClusterCAM(lite0.module, "blocks.6")(composite)
    assert ex.settings["image"] == 1
    assert ex.target == int(direct.targets[0])
    assert ex.image_forwards == 2
    assert ex.masked_forwards == 2 * Q
    assert torch.allclose(ex.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    assert ex.explanation.heatmaps.shape[-1] == 448
    menu = [v for _, v in c["target"].options]
    assert menu == [k for k, _ in ex.classes(1)]
    assert len(menu) == 3
    assert menu != first_menu
    assert c["target"].value == ex.target
    assert "cat | towel: target" in ex.caption(lite0.categories)

    second = menu[1]  # the other object of the composite, or a near class
    c["target"].value = second
    direct = camlab.ClusterCAM(lite0.module, "blocks.6")(composite, targets=[second])
    assert torch.allclose(ex.explanation.heatmaps, direct.heatmaps, atol=1e-5)
    assert ex.image_forwards == 2
    assert ex.masked_forwards == 3 * Q

    with PassCounter(lite0.module) as calls:
        c["image"].value = 0  # back: the first image's pass and fit are kept
    assert not calls.images
    assert ex.image_forwards == 2
    assert ex.masked_forwards == 3 * Q
    assert [v for _, v in c["target"].options] == first_menu
    fig = ex.figure(shown, lite0.categories)
    assert fig._suptitle is not None
    assert fig._suptitle.get_text().startswith("tench: target")
    plt.close("all")


def test_a_target_outside_the_top_classes_stays_in_the_menu(lite0, real_batch, monkeypatch):
    monkeypatch.delenv(HEADLESS, raising=False)
    with torch.no_grad():
        probs = lite0.module(real_batch[:1]).softmax(1)[0]
    rare = int(probs.argmin())  # the class the model finds least likely
    ex = ClusterExplorer(lite0.module, real_batch[:1], "blocks.6", target=rare, top_k=2)
    offered = ex.classes()
    assert len(offered) == 3
    assert offered[-1][0] == rare
    assert offered[0][0] == int(probs.argmax())
    assert abs(offered[-1][1] - float(probs[rare])) < 1e-5
    ex.widget(lite0.unnormalize(real_batch[0]), categories=lite0.categories)
    assert ex.controls["target"].value == rare == int(ex.explanation.targets[0])
    assert ex.image_forwards == 1
    assert ex.masked_forwards == Q
    assert "the model predicts" in ex.caption(lite0.categories)
    plt.close("all")


def test_target_caption_names_the_prediction_only_when_it_differs():
    probs = torch.tensor([0.05, 0.70, 0.25])
    assert target_caption(probs, 1, ["a", "b", "c"]) == "target b (p = 0.70, top-1)"
    text = target_caption(probs, 2, ["a", "b", "c"], name="photo")
    assert text == "photo: target c (p = 0.25); the model predicts b (p = 0.70)"
    assert target_caption(probs, 0) == "target class 0 (p = 0.05); the model predicts class 1 (p = 0.70)"
    assert target_caption(probs, 0, sep="\n").split("\n") == [
        "target class 0 (p = 0.05)",
        "the model predicts class 1 (p = 0.70)",
    ]


def test_explorer_errors(lite0, real_batch, explorer, two_images):
    with pytest.raises(ValueError, match="at least one image"):
        ClusterExplorer(lite0.module, [], "blocks.6")
    with pytest.raises(ValueError, match="batch of 3"):
        ClusterExplorer(lite0.module, [real_batch], "blocks.6")
    with pytest.raises(ValueError, match="2 names for 1 images"):
        ClusterExplorer(lite0.module, real_batch[:1], "blocks.6", names=["a", "b"])
    with pytest.raises(ValueError, match="cannot change 'seed'"):
        explorer.update(seed=2)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        explorer.update(alpha=2.0)
    with pytest.raises(ValueError, match="image must be an index in 0 … 0"):
        explorer.update(image=1)
    with pytest.raises(ValueError, match="out of range"):
        explorer.update(target=1000)
    with pytest.raises(TypeError, match="integers"):
        explorer.update(target=2.5)
    assert explorer.settings["alpha"] == DEFAULTS["alpha"]
    assert explorer.masked_forwards == Q
    with pytest.raises(ValueError, match="one display image per image"):
        two_images.figure(lite0.unnormalize(real_batch[0]))
    with pytest.raises(ValueError, match="1 display images for the explorer's 2"):
        two_images.widget([lite0.unnormalize(real_batch[0])])
    fig = explorer.figure(lite0.unnormalize(real_batch[0]))
    assert len(fig.axes) == 2 * (Q + 1) + 1  # the panels and the colour bar
    plt.close("all")


def test_headless_runs_make_no_widget(lite0, real_batch, explorer, monkeypatch, capsys):
    """With no front end (CAMLAB_HEADLESS, set by the project's notebook runs) the explorer makes
    no widget — widget comms can stall nbclient for good — and its figure still draws."""
    import ipywidgets

    monkeypatch.setenv(HEADLESS, "1")
    made = []
    monkeypatch.setattr(ipywidgets.Widget, "open", lambda self: made.append(self))
    assert explorer.widget(lite0.unnormalize(real_batch[0])) is None
    assert not made
    assert "the sliders need a live notebook" in capsys.readouterr().out
    assert len(explorer.figure(lite0.unnormalize(real_batch[0])).axes) == 2 * (Q + 1) + 1
    monkeypatch.setenv(HEADLESS, "0")
    assert explorer.widget(lite0.unnormalize(real_batch[0])) is not None
    assert made
    plt.close("all")


def test_an_explorer_on_the_classifier_runs_on_its_twin(lite0, real_batch, monkeypatch):
    """Built on a Classifier, the explorer's passes run on the folded twin: the same map and the
    same pass counts as on the bare module, and none of them through the bare module."""
    monkeypatch.delenv(HEADLESS, raising=False)
    with PassCounter(lite0.module) as bare_calls, PassCounter(lite0.fast.network) as twin_calls:
        ex = ClusterExplorer(lite0, real_batch[:1], "blocks.6")
        ex.update(n_clusters=4)
    assert ex.method.net is lite0.fast.network
    assert not bare_calls.images
    assert sum(twin_calls.images) == ex.image_forwards + ex.masked_forwards
    direct = camlab.ClusterCAM(lite0.module, "blocks.6", n_clusters=4)(real_batch[:1])
    assert torch.allclose(ex.explanation.heatmaps, direct.heatmaps, atol=1e-4)
