"""Tiny networks for edge cases the real model cannot produce on demand."""

import torch
from torch import nn


class ConstantFeatures(nn.Module):
    """A GAP network whose 'features' layer outputs constant (or all-negative) maps.

    The maps still depend on the input through a zero-weight path, so gradients flow.
    """

    def __init__(self, value: float, channels: int = 4):
        super().__init__()
        self.value = value
        self.conv = nn.Conv2d(3, channels, 3, stride=4, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.constant_(self.conv.bias, value)
        self.features = nn.Identity()
        self.fc = nn.Linear(channels, 3)

    def forward(self, x):
        a = self.features(self.conv(x))
        return self.fc(a.mean((2, 3)))


class SkipAround(nn.Module):
    """A network whose target layer sits inside a residual connection, so it cannot be split."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.inner = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        y = torch.relu(self.inner(s)) + s
        return self.fc(y.mean((2, 3)))
