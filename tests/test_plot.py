import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import camlab


def test_overlay_and_grid(lite0, real_batch):
    exp = camlab.CAM(lite0.module, lite0.target_layer)(real_batch)
    images = lite0.unnormalize(real_batch)
    ax = camlab.plot.overlay(images[0], exp.heatmaps[0], title="x")
    assert len(ax.images) == 2 and ax.get_title() == "x"
    fig = camlab.plot.grid(images, {"CAM": exp, "again": exp.heatmaps}, row_titles=["a", "b", "c"])
    assert len(fig.axes) == 3 * 3 + 1  # and one shared colour bar
    bar = fig.axes[-1]
    assert bar.get_ylabel().startswith("heatmap") and bar.get_ylim() == (0.0, 1.0)
    assert len(camlab.plot.grid(images, {"CAM": exp}, colorbar=False).axes) == 3 * 2
    plt.close("all")


def test_overlay_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        camlab.plot.overlay(np.zeros((10, 10, 3)), torch.zeros(5, 5))
    plt.close("all")
