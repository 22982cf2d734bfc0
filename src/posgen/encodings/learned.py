"""The StyleGAN learned constant input, as a positional encoding resampled off its lattice.

The constant is a C x h x w parameter defined on integer lattice points; at other
coordinates it is interpolated bilinearly from the four nearest points (Choi et al. App.
C.4, Fig. G, for sub-pixel shifts). The lattice is periodic: coordinates beyond it wrap, so
a rolled grid rolls the constant and a wider canvas tiles it.
"""
from __future__ import annotations

import torch
from torch import nn

from posgen.encodings._coords import split_xy


class LearnedConstant(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int] = (4, 4)) -> None:
        super().__init__()
        self.out_channels = channels
        self.size = (int(size[0]), int(size[1]))
        self.weight = nn.Parameter(torch.randn(channels, *self.size))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x, y = split_xy(coords)  # [N, 1, ...]
        h, w = self.size
        x0, y0 = torch.floor(x), torch.floor(y)
        fx, fy = (x - x0).to(self.weight.dtype), (y - y0).to(self.weight.dtype)
        ix0, iy0 = torch.remainder(x0.long(), w), torch.remainder(y0.long(), h)
        ix1, iy1 = torch.remainder(ix0 + 1, w), torch.remainder(iy0 + 1, h)
        flat = self.weight.flatten(1)  # [C, h*w]

        def corner(iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
            idx = (iy * w + ix).squeeze(1)  # [N, ...]
            return flat[:, idx].movedim(0, 1)  # [N, C, ...]

        top = corner(iy0, ix0) * (1 - fx) + corner(iy0, ix1) * fx
        bottom = corner(iy1, ix0) * (1 - fx) + corner(iy1, ix1) * fx
        return top * (1 - fy) + bottom * fy

    def extra_repr(self) -> str:
        return f"channels={self.out_channels}, size={self.size}"
