"""Metrics with values computed by hand on a toy model that needs no weights: its class-0 logit is
a·mean(channel 0), its class-1 logit 0, so the class-0 probability is σ(a·mean(channel 0))."""

import math

import pytest
import torch
from torch import nn

import camlab
from camlab import metrics as M

A = 2.0


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


class MeanLogit(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(A))

    def forward(self, x):
        m = x[:, 0].mean((1, 2))
        return torch.stack([self.a * m, torch.zeros_like(m)], 1)


@pytest.fixture
def toy():
    return MeanLogit().eval()


def image(values):
    """A 1×3×2×2 image whose channel 0 holds ``values`` (2×2); the other channels are ones."""
    x = torch.ones(1, 3, 2, 2)
    x[0, 0] = torch.tensor(values, dtype=torch.float32)
    return x


H = torch.tensor([[[1.0, 0.5], [0.25, 0.0]]])  # distinct values: no tie to break


def test_drop_and_increase_by_hand(toy):
    # a ones image: Y = σ(2); E = X ⊙ H has mean 1.75 / 4 in channel 0: O = σ(0.875)
    x = image([[1, 1], [1, 1]])
    y, o = sigmoid(A), sigmoid(A * 1.75 / 4)
    res = M.measure(toy, x, H, [0], ["drop", "drop_unclipped", "increase"])
    assert float(res["drop"][0]) == pytest.approx((y - o) / y, abs=1e-6)
    assert float(res["drop_unclipped"][0]) == pytest.approx((y - o) / y, abs=1e-6)
    assert not bool(res["increase"][0])
    # masking out a negative pixel raises the score: an increase, a clipped drop of 0 and a negative unclipped one
    x = image([[1, -1], [1, 1]])  # mean 0.5: Y = σ(1)
    keep = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # E's channel 0 has mean 0.75: O = σ(1.5)
    y, o = sigmoid(1.0), sigmoid(1.5)
    res = M.measure(toy, x, keep, [0], ["drop", "drop_unclipped", "increase"])
    assert bool(res["increase"][0])
    assert float(res["drop"][0]) == 0.0
    assert float(res["drop_unclipped"][0]) == pytest.approx((y - o) / y, abs=1e-6)
    assert (y - o) / y < 0


def test_deletion_and_insertion_by_hand(toy):
    x = image([[1, 1], [1, 1]])
    fractions = [0, 0.25, 0.5, 0.75, 1.0]
    # deletion, 4 steps: step k zeroes the k pixels with the highest heatmap values → mean (4 − k) / 4
    expected = [sigmoid(A * (4 - k) / 4) for k in range(5)]
    d = M.deletion(toy, x, H, [0], n_steps=4)
    assert d.fractions.tolist() == fractions
    assert d.scores[0].tolist() == pytest.approx(expected, abs=1e-6)
    area = sum((expected[k] + expected[k + 1]) / 2 * 0.25 for k in range(4))
    assert float(d.auc[0]) == pytest.approx(area, abs=1e-6)
    # insertion into the blurred image: a constant image blurs to itself, so every step scores σ(2)
    i = M.insertion(toy, x, H, [0], n_steps=4)
    assert i.scores[0].tolist() == pytest.approx([sigmoid(A)] * 5, abs=1e-6)
    assert float(i.auc[0]) == pytest.approx(sigmoid(A), abs=1e-6)
    # insertion on a non-constant image: step 0 is the blurred image alone, step 4 the image itself
    x = image([[4, 0], [0, 0]])
    i = M.insertion(toy, x, H, [0], n_steps=4)
    assert float(i.scores[0, -1]) == pytest.approx(sigmoid(A * 1.0), abs=1e-6)  # mean 4 / 4
    blurred = camlab.masking.blur(x)[0, 0]
    assert float(i.scores[0, 0]) == pytest.approx(sigmoid(A * float(blurred.mean())), abs=1e-6)
    # step 1 puts back the top pixel (heatmap 1.0 at the top left, value 4) into the blurred image
    step1 = blurred.clone()
    step1[0, 0] = 4.0
    assert float(i.scores[0, 1]) == pytest.approx(sigmoid(A * float(step1.mean())), abs=1e-6)


def test_coverage_by_hand():
    assert M.coverage(H).tolist() == pytest.approx([1.75 / 4])
