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

`architecture="pggan"` gives the generator of Karras et al.'s progressive GAN (ICLR 2018, Tab. 2) at a
fixed resolution (Xu Tab. 3; no growing): pixel-normalised z, a linear layer and a 3x3 conv at 4x4,
then per resolution 2x upsampling and two 3x3 convs, each with leaky ReLU (0.2) and pixel norm, all
with the equalized learning rate, and a linear 1x1 toRGB. Padding and encodings as above; the SPE is
added to the 4x4 map before its conv.

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
from posgen.ops import center_crop, normalize_2nd_moment, upsample2x
from posgen.ops.equalized import EqualConv2d, EqualLinear


@dataclass
class DCGANConfig:
    resolution: int = 64            # output size (power of two >= 8)
    z_dim: int = 100
    channel_base: int = 4096        # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    img_channels: int = 3
    padding: Literal["zero", "none"] = "zero"
    encoding: Literal["none", "sinusoid", "cartesian"] = "none"  # at the 4x4 input map (Xu Sec. 4.1)
    architecture: Literal["dcgan", "pggan"] = "dcgan"

    def validate(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"model.resolution must be a power of two >= 8, got {r}")
        if self.padding not in ("zero", "none") or self.encoding not in ("none", "sinusoid", "cartesian"):
            raise ValueError("model.padding must be 'zero' or 'none' and model.encoding 'none', 'sinusoid' or 'cartesian'")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"model.architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.encoding == "sinusoid" and self.channels(4) % 4:
            raise ValueError("the sinusoid at the input needs a multiple of 4 channels at 4x4")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


@dataclass(frozen=True)
class Architecture:
    convs_per_block: int   # 3x3 convs after each 2x upsampling
    input_convs: int       # 3x3 convs on the 4x4 map
    rgb_kernel: int        # the output conv: 3x3 (DCGAN) or 1x1 (PGGAN)


ARCHITECTURES = {"dcgan": Architecture(1, 0, 3), "pggan": Architecture(2, 1, 1)}


def dcgan_margins(num_blocks: int, arch: Architecture = ARCHITECTURES["dcgan"]) -> list[int]:
    """Padding-free margins: [margin of the 4x4 map after its convs, margin after each block ...], from the
    output back. The output conv eats (k - 1) / 2; a block's k valid 3x3 convs need its output margin + k
    after the upsampling, and 2x bilinear upsampling of margin m is valid up to 2m - 1 (its outermost
    pixel sees the border), so the input of a block needs ceil((M + k + 1) / 2)."""
    margins = [(arch.rgb_kernel - 1) // 2]  # after the last block: what the RGB conv eats
    for _ in range(num_blocks):
        margins.append(math.ceil((margins[-1] + arch.convs_per_block + 1) / 2))
    return margins[::-1]


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit mean square (Karras et al. 2018, Sec. 4.2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x)


def conv_stage(arch: str, c_in: int, c_out: int, convs: int, pad: int) -> nn.Sequential:
    """`convs` 3x3 convs: conv, batch norm, ReLU (DCGAN) or equalized conv, leaky ReLU, pixel norm (PGGAN)."""
    layers: list[nn.Module] = []
    for k in range(convs):
        c = c_in if k == 0 else c_out
        if arch == "dcgan":
            layers += [nn.Conv2d(c, c_out, 3, padding=pad), nn.BatchNorm2d(c_out), nn.ReLU()]
        else:
            layers += [EqualConv2d(c, c_out, 3, padding=pad, activation=True), PixelNorm()]
    return nn.Sequential(*layers)


class Generator(BaseGenerator):
    """z [N, z_dim] -> linear -> [N, C, 4(+2m), 4(+2m)] -> (upsample, conv stage) x log2(res / 4) -> RGB conv.

    DCGAN: conv stage = conv, BN, ReLU; output tanh. PGGAN: z pixel-normalised, the 4x4 map through a
    conv stage of its own, conv stage = 2 x (equalized conv, leaky ReLU, pixel norm); linear output."""

    family = "dcgan"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.num_blocks = int(math.log2(cfg.resolution)) - 2
        self.arch = arch = ARCHITECTURES[cfg.architecture]
        self.margins = dcgan_margins(self.num_blocks, arch) if cfg.padding == "none" else [0] * (self.num_blocks + 1)
        pad = 1 if cfg.padding == "zero" else 0
        c0 = cfg.channels(4)
        self.input_margin = self.margins[0] + (arch.input_convs if cfg.padding == "none" else 0)
        side = 4 + 2 * self.input_margin
        if cfg.architecture == "dcgan":
            self.fc = nn.Linear(cfg.z_dim, c0 * side * side)
            self.fc_norm: nn.Module = nn.BatchNorm2d(c0)
        else:
            self.fc = EqualLinear(cfg.z_dim, c0 * side * side, activation=True)
            self.fc_norm = PixelNorm()
        if cfg.encoding == "sinusoid":  # added to the input map: Xu Eq. 8, frequencies per Xu
            self.encoding: nn.Module | None = SinusoidalEncoding(c0, frequencies="xu")
        elif cfg.encoding == "cartesian":  # Eq. 6 on the 4x4 canvas, concatenated (2 channels)
            self.encoding = CartesianGrid((4, 4))
        else:
            self.encoding = None
        c_in = c0 + (2 if cfg.encoding == "cartesian" else 0)
        self.input_stage = conv_stage(cfg.architecture, c_in, c0, arch.input_convs, pad)
        c_in = c0 if arch.input_convs else c_in
        blocks = []
        for b in range(self.num_blocks):
            c_out = cfg.channels(8 * 2 ** b)
            blocks.append(conv_stage(cfg.architecture, c_in, c_out, arch.convs_per_block, pad))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        rgb_pad = pad * (arch.rgb_kernel // 2)
        self.to_rgb = (nn.Conv2d(c_in, cfg.img_channels, 3, padding=rgb_pad) if cfg.architecture == "dcgan"
                       else EqualConv2d(c_in, cfg.img_channels, arch.rgb_kernel, padding=rgb_pad))

    def latents(self, seeds: Sequence[int], grid: Grid | PointGrid | None = None) -> torch.Tensor:
        return seed_normal(seeds, (self.cfg.z_dim,))

    def render(self, latents: torch.Tensor, grid: Grid | PointGrid | None = None,
               options: RenderOptions = RenderOptions()) -> torch.Tensor:
        self.check(options, grid)
        if grid is not None and (not isinstance(grid, Grid) or grid.size != (self.resolution,) * 2
                                 or not torch.equal(grid.affine, self.default_grid().affine)):
            raise ValueError("a DCGAN renders its training canvas only (its linear input fixes the lattice)")
        return self(latents)

    def memory_estimate(self, batch: int, grid: Grid | PointGrid | None = None,
                        options: RenderOptions = RenderOptions()) -> int:
        peak, c_in = 0, self.cfg.channels(4)
        for b in range(self.num_blocks):  # the training canvas only
            side = 4 * 2 ** (b + 1) + 2 * (self.margins[b + 1] + self.arch.convs_per_block)
            c_out = self.cfg.channels(8 * 2 ** b)
            # the upsampling (`upsample2x`'s copies); a conv's input and output, its norm and activation
            peak = max(peak, 4 * batch * side * side * (4 * c_in + 6 * c_out))
            c_in = c_out
        return peak

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, z_dim] -> images [N, C, res, res]."""
        m0 = self.input_margin
        side = 4 + 2 * m0
        if self.cfg.architecture == "pggan":
            z = normalize_2nd_moment(z)
        x = self.fc_norm(self.fc(z).view(len(z), -1, side, side))  # [N, C0, 4 + 2 m0, ...]
        x = F.relu(x) if self.cfg.architecture == "dcgan" else x
        if self.encoding is not None:
            # coordinates of the 4x4 lattice (stride res / 4 on the output grid) with its margin
            coords = self.default_grid().scale_coords(self.resolution // 4, m0, device=x.device)
            pe = self.encoding(coords).to(x).expand(len(x), -1, -1, -1)
            x = x + pe if self.cfg.encoding == "sinusoid" else torch.cat([x, pe], dim=1)
        x = self.input_stage(x)
        for b, block in enumerate(self.blocks):
            x = upsample2x(x)
            if self.cfg.padding == "none":  # keep what the valid convs need: their output margin + one per conv
                side = 4 * 2 ** (b + 1) + 2 * (self.margins[b + 1] + self.arch.convs_per_block)
                x = center_crop(x, (side, side))
            x = block(x)
        x = self.to_rgb(x)
        return torch.tanh(x) if self.cfg.architecture == "dcgan" else x
