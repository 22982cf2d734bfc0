"""Learned Fourier features, Anokhin et al. (CIPS) Eq. 3: e_fo(x, y) = sin(B_fo (x', y')^T).

x' = 2x / (W - 1) - 1 and y' = 2y / (H - 1) - 1 map the pixel centres of the *training* canvas
(H, W) to [-1, 1] (pixel 0 -> -1, pixel W - 1 -> +1). The map is fixed by the training size,
not by the grid being rendered, so shifted, larger or denser grids see the same function of
the frame: coordinates beyond the canvas extrapolate linearly (|x'| > 1).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from posgen.encodings._coords import split_xy


class FourierFeatures(nn.Module):
    """`channels` sinusoids of the normalised (x', y') with a learnable frequency matrix B_fo.

    Args:
        channels: output channels C (rows of B_fo, which is C x 2 acting on (x', y')).
        size:     the training canvas (H, W) that fixes the normalisation; both at least 2.
        bias:     add a learnable phase b, sin(B_fo (x', y')^T + b). Eq. 3 has none, so every
                  feature is odd and vanishes at the canvas centre; the official CIPS code has
                  one (its first layer is a linear layer with bias).

    B_fo ~ U(-3/sqrt(2), 3/sqrt(2)) = U(-sqrt(9 / fan_in), sqrt(9 / fan_in)), the first-layer
    initialisation of the official CIPS code (the paper only says "learnable, like in SIREN"): the
    phase moves by at most 3 sqrt(2) (under one period) per axis across the canvas, so features
    start smooth. The phase b starts at U(-1/sqrt(2), 1/sqrt(2)), PyTorch's default for fan-in 2.
    """

    def __init__(self, channels: int, size: tuple[int, int], *, bias: bool = False) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"FourierFeatures needs positive channels, got {channels}")
        if len(size) != 2 or min(size) < 2:
            raise ValueError(f"FourierFeatures needs a training canvas (H, W) of at least 2x2, got {size}")
        self.out_channels = channels
        self.size = (int(size[0]), int(size[1]))
        self.weight = nn.Parameter(torch.empty(channels, 2).uniform_(-3 / math.sqrt(2), 3 / math.sqrt(2)))  # B_fo
        self.bias = nn.Parameter(torch.empty(channels).uniform_(-2**-0.5, 2**-0.5)) if bias else None

    def normalize(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame coords -> (x', y'), each [N, 1, ...]: the training canvas spans [-1, 1]."""
        x, y = split_xy(coords)
        h, w = self.size
        return 2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x, y = (t.to(self.weight.dtype) for t in self.normalize(coords))  # [N, 1, ...]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        phase = self.weight[:, 0].view(shape) * x + self.weight[:, 1].view(shape) * y  # [N, C, ...]
        if self.bias is not None:
            phase = phase + self.bias.view(shape)
        return torch.sin(phase)  # Eq. 3

    def extra_repr(self) -> str:
        return f"channels={self.out_channels}, size={self.size}, bias={self.bias is not None}"
