"""Cartesian spatial grid (CSG), Xu et al. Eq. 6: P(i, j) = 2 [i/H - 1/2, j/W - 1/2].

The reference canvas (H, W) fixes the spatial anchors: [-1, -1] at the top-left corner,
[0, 0] at the centre. Coordinates beyond the canvas extrapolate linearly.
"""
from __future__ import annotations

import torch
from torch import nn

from posgen.encodings._coords import split_xy


class CartesianGrid(nn.Module):
    """Two channels (y, x) normalised by the reference canvas `size` = (H, W) at that scale."""

    out_channels = 2

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"CartesianGrid needs a positive (H, W) size, got {size}")
        self.size = (int(size[0]), int(size[1]))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x, y = split_xy(coords)
        h, w = self.size
        return torch.cat([2 * (y / h - 0.5), 2 * (x / w - 0.5)], dim=1)  # Eq. 6, [N, 2, ...]

    def extra_repr(self) -> str:
        return f"size={self.size}"
