"""DCGAN generator with zero padding, without padding, and without padding plus an explicit
positional encoding: the settings of Xu et al., "Positional Encoding as Spatial Inductive Bias in
GANs" (CVPR 2021), Tables 3-4 and Sec. 4.1.

Radford et al.'s DCGAN maps z through a linear layer to a 4x4 feature map and grows it to the
output resolution. Following Xu et al. (who need a padding-free variant), each block is a 2x
bilinear upsampling and a 3x3 convolution (not a transposed conv, which pads implicitly), with
batch norm and ReLU; a last 3x3 conv and tanh give the image.

- padding "zero": every 3x3 conv zero-pads (Tab. 4a "DCGAN w/ conv");
- padding "none": valid convs on lattices widened by margins, the linear layer producing the 4x4
  map plus its margin, so no pixel ever sees a padded zero (Tab. 4b "+ No padding");
- encoding "sinusoid": the sinusoidal encoding (Xu Eq. 8) added to the input map only
  (Tab. 4c "+ SPE, w/o padding"); "cartesian": the Cartesian grid (Eq. 6) concatenated to it.

The linear input fixes the canvas: a DCGAN renders its training grid only (no capabilities).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posgen.encodings import CartesianGrid, SinusoidalEncoding
from posgen.grid import Grid, PointGrid
from posgen.models.base import Generator as BaseGenerator
from posgen.models.base import RenderOptions, seed_normal
from posgen.ops import center_crop, upsample2x


@dataclass
class DCGANConfig:
    resolution: int = 64            # output size (power of two >= 8)
    z_dim: int = 100
    channel_base: int = 4096        # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    img_channels: int = 3
    padding: Literal["zero", "none"] = "zero"
    encoding: Literal["none", "sinusoid", "cartesian"] = "none"  # at the 4x4 input map (Xu Sec. 4.1)

    def validate(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"model.resolution must be a power of two >= 8, got {r}")
        if self.padding not in ("zero", "none") or self.encoding not in ("none", "sinusoid", "cartesian"):
            raise ValueError("model.padding must be 'zero' or 'none' and model.encoding 'none', 'sinusoid' or 'cartesian'")
        if self.encoding == "sinusoid" and self.channels(4) % 4:
            raise ValueError("the sinusoid at the input needs a multiple of 4 channels at 4x4")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


def dcgan_margins(num_blocks: int) -> list[int]:
    """Padding-free margins: [margin of the 4x4 input, margin after each block's conv ...], from the output
    back. The last 3x3 conv needs margin 1; a block's valid conv needs its output margin + 1 after the
    upsampling, and 2x bilinear upsampling of margin m is valid up to 2m - 1 (its outermost pixel sees
    the border), so the input of a block needs ceil((M + 2) / 2)."""
    margins = [1]  # after the last block: what the RGB conv eats
    for _ in range(num_blocks):
        margins.append(math.ceil((margins[-1] + 2) / 2))
    return margins[::-1]


class Generator(BaseGenerator):
    """z [N, z_dim] -> linear -> [N, C, 4(+2m), 4(+2m)] -> (upsample, conv, BN, ReLU) x log2(res / 4) -> conv, tanh."""

    family = "dcgan"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.num_blocks = int(math.log2(cfg.resolution)) - 2
        self.margins = dcgan_margins(self.num_blocks) if cfg.padding == "none" else [0] * (self.num_blocks + 1)
        pad = 1 if cfg.padding == "zero" else 0
        c0 = cfg.channels(4)
        side = 4 + 2 * self.margins[0]
        self.fc = nn.Linear(cfg.z_dim, c0 * side * side)
        self.fc_norm = nn.BatchNorm2d(c0)
        if cfg.encoding == "sinusoid":  # added to the input map: Xu Eq. 8, frequencies per Xu
            self.encoding: nn.Module | None = SinusoidalEncoding(c0, frequencies="xu")
        elif cfg.encoding == "cartesian":  # Eq. 6 on the 4x4 canvas, concatenated (2 channels)
            self.encoding = CartesianGrid((4, 4))
        else:
            self.encoding = None
        c_in = c0 + (2 if cfg.encoding == "cartesian" else 0)
        blocks = []
        for b in range(self.num_blocks):
            c_out = cfg.channels(8 * 2 ** b)
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=pad), nn.BatchNorm2d(c_out), nn.ReLU()))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(c_in, cfg.img_channels, 3, padding=pad)

    def latents(self, seeds: Sequence[int], grid: Grid | PointGrid | None = None) -> torch.Tensor:
        return seed_normal(seeds, (self.cfg.z_dim,))

    def render(self, latents: torch.Tensor, grid: Grid | PointGrid | None = None,
               options: RenderOptions = RenderOptions()) -> torch.Tensor:
        self.check(options, grid)
        if grid is not None and (not isinstance(grid, Grid) or grid.size != (self.resolution,) * 2
                                 or not torch.equal(grid.affine, self.default_grid().affine)):
            raise ValueError("a DCGAN renders its training canvas only (its linear input fixes the lattice)")
        return self(latents)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, z_dim] -> images [N, C, res, res]."""
        m0 = self.margins[0]
        side = 4 + 2 * m0
        x = F.relu(self.fc_norm(self.fc(z).view(len(z), -1, side, side)))  # [N, C0, 4 + 2 m0, ...]
        if self.encoding is not None:
            # coordinates of the 4x4 lattice (stride res / 4 on the output grid) with its margin
            coords = self.default_grid().scale_coords(self.resolution // 4, m0, device=x.device)
            pe = self.encoding(coords).to(x).expand(len(x), -1, -1, -1)
            x = x + pe if self.cfg.encoding == "sinusoid" else torch.cat([x, pe], dim=1)
        for b, block in enumerate(self.blocks):
            x = upsample2x(x)
            if self.cfg.padding == "none":  # keep what the valid conv needs: its output margin + 1
                side = 4 * 2 ** (b + 1) + 2 * (self.margins[b + 1] + 1)
                x = center_crop(x, (side, side))
            x = block(x)
        return torch.tanh(self.to_rgb(x))
