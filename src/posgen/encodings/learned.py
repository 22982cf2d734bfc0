"""A learned C x h x w lattice of vectors, resampled bilinearly at any coordinates.

Two uses: the StyleGAN learned constant input (periodic lattice: coordinates beyond it wrap, so
a rolled grid rolls the constant and a wider canvas tiles it), and the CIPS coordinate
embeddings (Anokhin et al. Eq. 4: one learned vector per training pixel). On the integer
lattice points the parameter is returned exactly; elsewhere it is interpolated bilinearly from
the four nearest points (Choi et al. App. C.4, Fig. G, for sub-pixel shifts). Outside the
lattice the `boundary` decides: "wrap" (periodic) or "clamp" (replicate the edge), for both
axes or per axis as (y, x), e.g. ("clamp", "wrap") for a cylinder.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from posgen.encodings._coords import split_xy

Boundary = Literal["wrap", "clamp"]


class LearnedConstant(nn.Module):
    """`channels` x `size` parameter sampled at coords [2, H, W] / [2, P] -> [N, C, H, W] / [N, C, P]."""

    def __init__(self, channels: int, size: tuple[int, int] = (4, 4), *,
                 boundary: Boundary | tuple[Boundary, Boundary] = "wrap") -> None:
        super().__init__()
        per_axis = (boundary, boundary) if isinstance(boundary, str) else tuple(boundary)
        if len(per_axis) != 2 or any(b not in ("wrap", "clamp") for b in per_axis):
            raise ValueError(f"boundary must be 'wrap' or 'clamp' (or a (y, x) pair of them), got {boundary!r}")
        self.out_channels = channels
        self.size = (int(size[0]), int(size[1]))
        self.boundary: tuple[Boundary, Boundary] = per_axis  # (y, x)
        self.weight = nn.Parameter(torch.randn(channels, *self.size))

    @staticmethod
    def _index(i: torch.Tensor, n: int, boundary: Boundary) -> torch.Tensor:
        """Integer lattice index -> index into the parameter along an axis of length n."""
        return torch.remainder(i, n) if boundary == "wrap" else i.clamp(0, n - 1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x, y = split_xy(coords)  # [N, 1, ...]
        h, w = self.size
        x0, y0 = torch.floor(x), torch.floor(y)
        fx, fy = (x - x0).to(self.weight.dtype), (y - y0).to(self.weight.dtype)
        x0, y0 = x0.long(), y0.long()
        by, bx = self.boundary
        ix0, iy0 = self._index(x0, w, bx), self._index(y0, h, by)
        ix1, iy1 = self._index(x0 + 1, w, bx), self._index(y0 + 1, h, by)
        flat = self.weight.flatten(1)  # [C, h*w]

        def corner(iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
            idx = (iy * w + ix).squeeze(1)  # [N, ...]
            return flat[:, idx].movedim(0, 1)  # [N, C, ...]

        top = corner(iy0, ix0) * (1 - fx) + corner(iy0, ix1) * fx
        bottom = corner(iy1, ix0) * (1 - fx) + corner(iy1, ix1) * fx
        return top * (1 - fy) + bottom * fy

    def extra_repr(self) -> str:
        by, bx = self.boundary
        return f"channels={self.out_channels}, size={self.size}, boundary={bx if bx == by else (by, bx)}"
