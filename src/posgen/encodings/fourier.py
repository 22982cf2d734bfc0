"""Learned Fourier features, Anokhin et al. (CIPS) Eq. 3: e_fo(x, y) = sin(B_fo (x', y')^T).

x' = 2x / (W - 1) - 1 and y' = 2y / (H - 1) - 1 map the pixel centres of the *training* canvas
(H, W) to [-1, 1] (pixel 0 -> -1, pixel W - 1 -> +1). The map is fixed by the training size,
not by the grid being rendered, so shifted, larger or denser grids see the same function of
the frame: coordinates beyond the canvas extrapolate linearly (|x'| > 1).

Cylinder (CIPS Sec. 4.8, panoramas): with a `circumference` of P training pixels along x, the x
axis is an angle theta = 2 pi x / P and the features are sin(B_fo (R cos theta, R sin theta, y')^T),
exactly periodic in x with period P. The radius R = P / (pi (W - 1)) makes one pixel of arc as long
as one pixel of x', so a training crop sees the same local frequencies as on the plane.
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
        circumference: None for the plane; P > 0 wraps x onto a cylinder of P pixels (B_fo is C x 3).
        bias:     add a learnable phase b, sin(B_fo (x', y')^T + b). Eq. 3 has none, so every
                  feature is odd and vanishes at the canvas centre; the official CIPS code has
                  one (its first layer is a linear layer with bias).

    B_fo ~ U(-sqrt(9 / fan_in), sqrt(9 / fan_in)) (fan_in 2, or 3 on the cylinder), the first-layer
    initialisation of the official CIPS code (the paper only says "learnable, like in SIREN"): the
    phase moves by at most 3 sqrt(2) (under one period) per axis across the canvas, so features
    start smooth. The phase b starts at U(-1/sqrt(2), 1/sqrt(2)), PyTorch's default for fan-in 2.
    """

    def __init__(self, channels: int, size: tuple[int, int], *, circumference: float | None = None,
                 bias: bool = False) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"FourierFeatures needs positive channels, got {channels}")
        if len(size) != 2 or min(size) < 2:
            raise ValueError(f"FourierFeatures needs a training canvas (H, W) of at least 2x2, got {size}")
        if circumference is not None and circumference <= 0:
            raise ValueError(f"FourierFeatures circumference must be positive, got {circumference}")
        self.out_channels = channels
        self.size = (int(size[0]), int(size[1]))
        self.circumference = None if circumference is None else float(circumference)
        fan_in = 2 if circumference is None else 3
        bound = 3 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(channels, fan_in).uniform_(-bound, bound))  # B_fo
        self.bias = nn.Parameter(torch.empty(channels).uniform_(-fan_in**-0.5, fan_in**-0.5)) if bias else None

    def normalize(self, coords: torch.Tensor) -> list[torch.Tensor]:
        """Frame coords -> the inputs of B_fo, each [N, 1, ...]: (x', y') with the training canvas
        spanning [-1, 1], or (R cos theta, R sin theta, y') on the cylinder."""
        x, y = split_xy(coords)
        h, w = self.size
        y_n = 2 * y / (h - 1) - 1
        if self.circumference is None:
            return [2 * x / (w - 1) - 1, y_n]
        theta = x * (2 * math.pi / self.circumference)
        radius = self.circumference / (math.pi * (w - 1))
        return [radius * torch.cos(theta), radius * torch.sin(theta), y_n]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        inputs = [t.to(self.weight.dtype) for t in self.normalize(coords)]  # each [N, 1, ...]
        shape = (1, -1) + (1,) * (inputs[0].ndim - 2)
        phase = sum(self.weight[:, k].view(shape) * t for k, t in enumerate(inputs))  # [N, C, ...]
        if self.bias is not None:
            phase = phase + self.bias.view(shape)
        return torch.sin(phase)  # Eq. 3

    def extra_repr(self) -> str:
        cyl = "" if self.circumference is None else f", circumference={self.circumference:g}"
        return f"channels={self.out_channels}, size={self.size}{cyl}, bias={self.bias is not None}"
