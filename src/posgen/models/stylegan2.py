"""StyleGAN2 generator with explicit positional encodings.

Papers: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (the baseline:
mapping network, modulated/demodulated convs, noise, skip-to-RGB); Choi et al., "Toward
Spatially Unbiased Generative Models" (SS-PE: the constant replaced by a sinusoid, Eq. 4;
MS-PE: a sinusoid added at every scale with a learnable gamma, Eq. 3-5); Xu et al.,
"Positional Encoding as Spatial Inductive Bias in GANs" (Cartesian grid input, Eq. 6;
padding-free generators, Sec. 4).

The generator renders on a `posgen.grid.Grid`. Every scale's lattice coordinates come from
that grid (`Grid.scale_coords`), so shifted, rolled, zoomed, non-square and larger grids
need nothing special here. Padding-free generators compute each scale on a lattice widened
by a margin, so that every output pixel comes from valid convolutions only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from posgen.encodings import CartesianGrid, LearnedConstant, SinusoidalEncoding
from posgen.grid import Grid
from posgen.errors import CapabilityError
from posgen.models.base import COORD_BYTES, MappedGenerator, RenderOptions, min_tile_side
from posgen.ops import EqualConv2d, ModulatedConv2d, ToRGB, upsample2x
from posgen.ops.noise import NoiseMode
from posgen.ops.resample import center_crop

EncodingKind = Literal["constant", "sinusoid", "cartesian"]


@dataclass
class StyleGAN2Config:
    resolution: int = 256          # training canvas (square, power of two >= 16)
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    num_classes: int = 0           # > 0: class-conditional mapping, the class carried by z (ops/mapping.py)
    channel_base: int = 16384      # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    img_channels: int = 3
    input: EncodingKind = "constant"             # what the 4x4 scale starts from
    scale_encoding: EncodingKind | None = None   # None: SS-PE (input only); else MS-PE at every scale
    padding: Literal["zero", "none"] = "zero"
    upsample: Literal["bilinear", "transposed"] = "bilinear"
    noise: bool = True             # per-pixel noise inputs
    gamma_init: float = 1.0        # MS-PE gamma at start (Choi et al.'s code: 1)
    sinusoid_frequencies: Literal["choi", "xu", "endpoint"] = "choi"
    sinusoid_layout: Literal["interleaved", "blocked"] = "interleaved"

    def validate(self) -> None:
        r = self.resolution
        if r < 16 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two >= 16, got {r}")
        for name, kinds in (("input", ("constant", "sinusoid", "cartesian")),
                            ("scale_encoding", (None, "constant", "sinusoid", "cartesian")),
                            ("padding", ("zero", "none")), ("upsample", ("bilinear", "transposed"))):
            if getattr(self, name) not in kinds:
                raise ValueError(f"{name} must be one of {kinds}, got {getattr(self, name)!r}")
        if self.padding == "none" and self.upsample == "transposed":
            raise ValueError("padding-free generators need upsample='bilinear' (a transposed conv pads implicitly)")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


def padding_free_margins(num_scales: int, shrink: int = 1) -> list[int]:
    """Extra feature pixels per side at each scale so that the output needs no padding.

    Working back from the output (margin 0): a block with two valid convs needs margin M + 2
    after upsampling, and bilinear 2x upsampling of margin m is valid up to 2m - 1 (its
    outermost pixel sees the border), so the previous scale needs ceil((M + 2 shrink + 1) / 2).
    """
    margins = [0]
    for _ in range(num_scales - 1):
        margins.append(math.ceil((margins[-1] + 2 * shrink + 1) / 2))
    return margins[::-1]


def _encoding(kind: EncodingKind, channels: int, lattice: int, cfg: StyleGAN2Config) -> nn.Module:
    """An encoding with `channels` outputs at a scale whose training lattice is `lattice`^2."""
    if kind == "sinusoid":
        return SinusoidalEncoding(channels, frequencies=cfg.sinusoid_frequencies, layout=cfg.sinusoid_layout)
    if kind == "constant":
        return LearnedConstant(channels, (lattice, lattice))
    return CartesianGrid((lattice, lattice))


class _Projected(nn.Sequential):
    """An encoding followed by a learned 1x1 projection to `channels` (CSG at MS-PE scales)."""

    def __init__(self, encoding: nn.Module, channels: int) -> None:
        super().__init__(encoding, EqualConv2d(encoding.out_channels, channels, 1))
        self.out_channels = channels


class SynthesisBlock(nn.Module):
    """One scale: 2x-upsampling conv (+ gamma PE for MS-PE), conv, to-RGB."""

    def __init__(self, cin: int, cout: int, res: int, index: int, cfg: StyleGAN2Config) -> None:
        super().__init__()
        pe = None
        if cfg.scale_encoding is not None:
            pe = _encoding(cfg.scale_encoding, cout, res, cfg)
            if pe.out_channels != cout:
                pe = _Projected(pe, cout)
        noise = (lambda k: 2 * index + k) if cfg.noise else (lambda k: None)
        self.conv0 = ModulatedConv2d(cin, cout, 3, cfg.w_dim, padding=cfg.padding, up=cfg.upsample,
                                     noise_seed=noise(0), positional_encoding=pe, gamma_init=cfg.gamma_init)
        self.conv1 = ModulatedConv2d(cout, cout, 3, cfg.w_dim, padding=cfg.padding, noise_seed=noise(1))
        self.torgb = ToRGB(cout, cfg.w_dim, cfg.img_channels)


class Generator(MappedGenerator):
    """G(z, grid) -> images in about [-1, 1], [N, img_channels, grid.height, grid.width].

    Convolutions couple neighbouring pixels, so it renders whole lattices (no point sets, no chunks).
    """

    family = "stylegan2"
    capabilities = frozenset({"shift", "roll", "zoom", "expand", "rotate", "truncation", "mixing", "noise"})

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.num_scales = int(math.log2(cfg.resolution)) - 1  # 4x4 .. resolution
        self.resolutions = [4 * 2**k for k in range(self.num_scales)]
        self.num_ws = 2 * self.num_scales
        self.mapping = self.build_mapping(cfg)
        c4 = cfg.channels(4)
        self.input = _encoding(cfg.input, c4, 4, cfg)  # Choi Eq. 4: h^1 = G^0(PE^0, w^0)
        self.conv_in = ModulatedConv2d(self.input.out_channels, c4, 3, cfg.w_dim, padding=cfg.padding,
                                       noise_seed=0 if cfg.noise else None)
        self.torgb_in = ToRGB(c4, cfg.w_dim, cfg.img_channels)
        self.blocks = nn.ModuleList(
            SynthesisBlock(cfg.channels(r // 2), cfg.channels(r), r, k, cfg)
            for k, r in enumerate(self.resolutions[1:], start=1))
        self.margins = padding_free_margins(self.num_scales) if cfg.padding == "none" else [0] * self.num_scales
        self.shrink = 1 if cfg.padding == "none" else 0

    @property
    def coarsest_stride(self) -> int:
        return self.resolution // 4

    def synthesize(self, ws: torch.Tensor, grid: Grid | None, options: RenderOptions) -> torch.Tensor:
        return self.synthesis(ws, grid, options.noise_mode or "const")

    def tiling(self) -> tuple[int, int]:
        if self.cfg.padding != "none":
            raise CapabilityError("its zero padding makes every pixel depend on where the canvas border is")
        # a tile's origin on the coarsest lattice puts every scale's lattice of the tile on the whole canvas's
        scales = [(self.coarsest_stride, min(self.input.out_channels, self.cfg.channels(4)))]
        scales += [(self.resolution // r, min(self.cfg.channels(r // 2), self.cfg.channels(r))) for r in self.resolutions[1:]]
        return self.coarsest_stride, min_tile_side(self.coarsest_stride, scales)

    def memory_estimate(self, batch: int, grid: Grid | None = None, options: RenderOptions = RenderOptions()) -> int:
        grid = grid or self.default_grid()
        s = self.coarsest_stride
        canvas = grid.resize(math.ceil(grid.height / s) * s, math.ceil(grid.width / s) * s)
        peak = 0
        for k, r in enumerate(self.resolutions):
            h, w = canvas.scale_lattice(self.resolution // r, self.margins[k] + self.shrink)
            c_in = self.input.out_channels if k == 0 else self.cfg.channels(r // 2)
            # the modulated input upsampled (`upsample2x`: its last pass's input, two scaled copies and the
            # output), the conv output and the elementwise result beside it, the skip images; the coordinate
            # and noise fields
            floats = 3 * c_in + 2 * self.cfg.channels(r) + 4 * self.cfg.img_channels
            peak = max(peak, h * w * (4 * batch * floats + COORD_BYTES))
        return peak

    def synthesis(self, ws: torch.Tensor, grid: Grid | None = None, noise_mode: NoiseMode = "random") -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images on `grid` (default: the training canvas)."""
        grid, canvas = self.lattice_canvas(ws, grid, self.coarsest_stride)  # every scale divides the canvas
        dev, dtype = ws.device, ws.dtype

        def coords(scale: int, extra: int = 0) -> torch.Tensor:
            return canvas.scale_coords(self.resolution // self.resolutions[scale], self.margins[scale] + extra,
                                       device=dev, dtype=dtype)

        x = self.input(coords(0, self.shrink)).to(dtype)  # [1 or N, C, h0 + 2m, w0 + 2m]
        x = x.expand(ws.shape[0], -1, -1, -1)
        x = self.conv_in(x, ws[:, 0], coords(0), noise_mode)
        img = self.torgb_in(x, ws[:, 1])
        for k, block in enumerate(self.blocks, start=1):
            x = block.conv0(x, ws[:, 2 * k - 1], coords(k, self.shrink), noise_mode)
            x = block.conv1(x, ws[:, 2 * k], coords(k), noise_mode)
            img = center_crop(upsample2x(img), x.shape[-2:]) + block.torgb(x, ws[:, 2 * k + 1])
        return img[:, :, : grid.height, : grid.width]
