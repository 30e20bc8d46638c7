import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import camlab


def test_overlay_and_grid(lite0, real_batch):
    exp = camlab.CAM(lite0.module, lite0.target_layer)(real_batch)
    images = lite0.unnormalize(real_batch)
    ax = camlab.plot.overlay(images[0], exp.heatmaps[0], title="x")
    assert len(ax.images) == 2
    assert ax.get_title() == "x"
    fig = camlab.plot.grid(images, {"CAM": exp, "again": exp.heatmaps}, row_titles=["a", "b", "c"])
    assert len(fig.axes) == 3 * 3 + 1  # and one shared colour bar
    bar = fig.axes[-1]
    assert bar.get_ylabel().startswith("heatmap")
    assert bar.get_ylim() == (0.0, 1.0)
    assert len(camlab.plot.grid(images, {"CAM": exp}, colorbar=False).axes) == 3 * 2
    plt.close("all")


def test_overlay_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        camlab.plot.overlay(np.zeros((10, 10, 3)), torch.zeros(5, 5))
    plt.close("all")


def test_map_correlation_and_near_identical_groups():
    from camlab.core.maps import correlation_matrix, map_correlation, near_identical

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 7, 7, generator=g)
    b = torch.rand(3, 7, 7, generator=g)
    flat = torch.ones(3, 7, 7)
    assert torch.allclose(map_correlation(a, 3 * a + 2), torch.ones(3), atol=1e-6)
    assert torch.equal(map_correlation(a, flat), torch.zeros(3))  # a constant map: 0, never NaN
    expected = torch.tensor(
        [float(torch.corrcoef(torch.stack([u.flatten(), v.flatten()]))[0, 1]) for u, v in zip(a, b, strict=True)]
    )
    assert torch.allclose(map_correlation(a, b), expected, atol=1e-5)
    r = correlation_matrix({"a": a, "a2": 2 * a, "b": b, "b2": b + 1e-3 * a})
    assert r.shape == (4, 4, 3)
    assert near_identical(r, ["a", "a2", "b", "b2"]) == [["a", "a2"], ["b", "b2"]]
    with pytest.raises(ValueError, match="differ in shape"):
        map_correlation(a, b[:2])


def test_similarity_curves_joined_or_side_by_side():
    from matplotlib.collections import PolyCollection
    from matplotlib.container import ErrorbarContainer

    rows = [
        {"method": m, "step": s, "block": ["", "classifier", "bn2"][s], "image": i, "spearman": v + 0.1 * i}
        for m, v in (("a", 0.5), ("b", -0.2))
        for s in range(3)
        for i in range(4)
    ]
    ax = camlab.plot.similarity_curves(rows)
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2  # one band per method
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [0.65] * 3)  # the mean over the 4 images
    ax = camlab.plot.similarity_curves(rows, joined=False)
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # no band across separate steps
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [b.get_label() for b in bars] == ["a", "b"]
    xs = [b.lines[0].get_xdata() for b in bars]
    assert np.all(xs[0] < xs[1])  # side by side
    assert np.all(np.abs(np.concatenate(xs) - np.tile(range(3), 2)) < 0.4)  # around their step
    plt.close("all")
