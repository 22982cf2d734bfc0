"""2D sinusoidal positional encoding (SPE).

Choi et al. (Toward Spatially Unbiased Generative Models), Eq. 1-2:
    PE(i, j) = [pe(i, 0..2d-1), pe(j, 0..2d-1)],  pe(i, 2k) = sin(i / 10000^(k/2d)),
    pe(i, 2k+1) = cos(i / 10000^(k/2d)),  k = 0..d-1,  d = C/4.
Xu et al. (Positional Encoding as Spatial Inductive Bias in GANs), Eq. 8: the same layout with
    omega_k = 1 / 10000^(2k/D), D = C/2 the per-axis dimension, k = 0..D/2-1.
Public implementations (fairseq-style, used by mmgeneration) instead use
    omega_k = 10000^(-k/(n-1)) with n = C/4 frequencies per axis and [sin..., cos...] blocks.
Each difference is a named argument; the defaults are Choi Eq. 1-2.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from posgen.encodings._coords import split_xy

Frequencies = Literal["choi", "xu", "endpoint"]


class SinusoidalEncoding(nn.Module):
    """Sinusoids of the (x, y) coordinates; `channels` must be a multiple of 4.

    Args:
        channels:     output channels C; n = C/4 frequencies per axis, a sin and a cos each.
        frequencies:  "choi" omega_k = base^(-k/(2n)) (Choi Eq. 2, d = n);
                      "xu" omega_k = base^(-k/n) (Xu Eq. 8, 2k/D with D = 2n);
                      "endpoint" omega_k = base^(-k/(n-1)) (fairseq / mmgeneration code).
        base:         the 10000 of the equations.
        layout:       "interleaved" [sin w0, cos w0, sin w1, ...] (both papers) or
                      "blocked" [sin w0, sin w1, ..., cos w0, cos w1, ...] per axis.
        order:        "sin-cos" (papers) or "cos-sin": which function comes first in a pair/block.
        axes:         "yx" rows first (Choi Eq. 1, Xu Eq. 8: height then width) or "xy".
        coordinate_scale: multiplies coordinates first: 1 uses raw indices (the papers),
                      1/size gives normalised coordinates.
    """

    def __init__(
        self,
        channels: int,
        *,
        frequencies: Frequencies = "choi",
        base: float = 10000.0,
        layout: Literal["interleaved", "blocked"] = "interleaved",
        order: Literal["sin-cos", "cos-sin"] = "sin-cos",
        axes: Literal["yx", "xy"] = "yx",
        coordinate_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if channels < 4 or channels % 4:
            raise ValueError(f"SinusoidalEncoding needs channels divisible by 4, got {channels}")
        n = channels // 4
        k = torch.arange(n, dtype=torch.float64)
        if frequencies == "choi":
            exponent = k / (2 * n)
        elif frequencies == "xu":
            exponent = k / n
        elif frequencies == "endpoint":
            exponent = k / max(n - 1, 1)
        else:
            raise ValueError(f"unknown frequencies convention {frequencies!r}")
        if layout not in ("interleaved", "blocked") or order not in ("sin-cos", "cos-sin") or axes not in ("yx", "xy"):
            raise ValueError(f"bad SinusoidalEncoding convention: layout={layout!r} order={order!r} axes={axes!r}")
        self.out_channels = channels
        self.frequencies, self.layout, self.order, self.axes = frequencies, layout, order, axes
        self.base, self.coordinate_scale = base, coordinate_scale
        # A pure function of its arguments; recomputed on .to(), never saved in a state dict.
        self.register_buffer("omega", torch.exp(-exponent * math.log(base)).float(), persistent=False)

    def _axis(self, t: torch.Tensor) -> torch.Tensor:
        """t [N, 1, ...] -> [N, 2n, ...] sinusoids of one axis."""
        shape = (1, -1) + (1,) * (t.ndim - 2)
        phase = t * self.coordinate_scale * self.omega.to(t.dtype).view(shape)  # [N, n, ...]
        first, second = (torch.sin(phase), torch.cos(phase))
        if self.order == "cos-sin":
            first, second = second, first
        if self.layout == "blocked":
            return torch.cat([first, second], dim=1)
        return torch.stack([first, second], dim=2).flatten(1, 2)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x, y = split_xy(coords)
        parts = [self._axis(y), self._axis(x)] if self.axes == "yx" else [self._axis(x), self._axis(y)]
        return torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        return (f"channels={self.out_channels}, frequencies={self.frequencies}, layout={self.layout}, "
                f"order={self.order}, axes={self.axes}, coordinate_scale={self.coordinate_scale}")
