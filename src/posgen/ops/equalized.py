"""Equalized-learning-rate layers (Karras et al.): weights stored at unit variance and
scaled by 1/sqrt(fan_in) at run time, so Adam sees every layer at the same scale."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

lrelu_gain = math.sqrt(2.0)  # keeps activations at unit variance after leaky ReLU(0.2)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * lrelu_gain


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return leaky_relu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """Plain equalized conv (discriminator, 1x1 projections). `padding` in pixels per side."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, padding: int = 0,
                 bias: bool = True, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = padding
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return leaky_relu(x) if self.activation else x
