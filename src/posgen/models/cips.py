"""CIPS generator: every pixel synthesised independently from its coordinates and a style.

Paper: Anokhin et al., "Image Generators with Conditionally-Independent Pixel Synthesis"
(CVPR 2021). A StyleGAN2 mapping network turns z into w; each pixel's positional encoding
e(x, y) = concat[e_fo, e_co] (Eq. 4) of Fourier features (Eq. 3) and coordinate embeddings goes
through a perceptron of modulated fully-connected layers (ModFC, Eq. 2: a 1x1 `ModulatedConv2d`
without noise). Appendix A: one ModFC projects e(x, y) to the hidden width, then pairs of ModFC
layers follow, each pair feeding a to-RGB projection whose outputs are summed (skip-to-RGB).
The ablations of Table 3 are config switches (`TABLE3_VARIANTS`).

Nothing propagates between pixels, so the generator renders any `Grid` or `PointGrid`, in
chunks of points if asked (peak activation memory bounded by the chunk size). Positions come
from the grid's frame (training-pixel units); both encodings are anchored to the training canvas,
so a shifted, larger or denser grid shows the same image moved, extended or resampled. Off the
canvas, Fourier features extrapolate linearly in (x', y') and the embeddings replicate their
edge ("clamp", default: no seam or repeated key points beside the canvas) or tile ("wrap");
between training pixels the embeddings are interpolated bilinearly (denser grids, Sec. 4.7).

Cylindrical panoramas (Sec. 4.8): with `circumference` P > 0 the x axis closes into a circle of P
training pixels. The Fourier features take (R cos theta, R sin theta, y') (see `FourierFeatures`)
and the embedding lattice is H x P, wrapping in x, so every encoding is exactly P-periodic in x.
Training renders resolution x resolution crops at random offsets around the cylinder against
random crops of ordinary photographs; `panorama_grid()` is the whole 360-degree strip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn

from posgen.encodings import FourierFeatures, LearnedConstant
from posgen.grid import Grid, PointGrid
from posgen.models.base import COORD_BYTES, MappedGenerator, RenderOptions, lattice_points, min_tile_side
from posgen.ops import ModulatedConv2d, ToRGB

# Table 3 of Anokhin et al.: each column as CIPSConfig fields ("main" is the paper's default).
TABLE3_VARIANTS: dict[str, dict] = {
    "base":       dict(fourier=True,  embedding=True,  residual=False, skips=False, activation="lrelu"),
    "NE":         dict(fourier=True,  embedding=False, residual=False, skips=False, activation="lrelu"),
    "no-fourier": dict(fourier=False, embedding=True,  residual=False, skips=False, activation="lrelu"),
    "main":       dict(fourier=True,  embedding=True,  residual=False, skips=True,  activation="lrelu"),
    "residual":   dict(fourier=True,  embedding=True,  residual=True,  skips=False, activation="lrelu"),
    "sine":       dict(fourier=False, embedding=True,  residual=False, skips=False, activation="sine"),
}


@dataclass
class CIPSConfig:
    resolution: int = 256          # training canvas (square): fixes both encodings' frame
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    num_classes: int = 0           # > 0: class-conditional mapping, the class carried by z (ops/mapping.py)
    width: int = 512               # hidden channels of every ModFC layer (Sec. 4.1)
    num_layers: int = 14           # ModFC layers after the input projection, in pairs (Sec. 4.1, App. A)
    fourier_channels: int = 512    # e_fo channels (Eq. 3)
    embedding_channels: int = 512  # e_co channels (Eq. 4)
    img_channels: int = 3
    fourier: bool = True           # Fourier features (Table 3 "No Fourier": False)
    fourier_bias: bool = False     # learnable phase in e_fo (official code; Eq. 3 has none)
    embedding: bool = True         # coordinate embeddings (Table 3 "NE": False)
    embedding_boundary: Literal["wrap", "clamp"] = "clamp"  # e_co off the canvas: replicate the edge, or tile
    skips: bool = True             # to-RGB after every pair of layers, summed ("main"); else one at the end
    residual: bool = False         # pairs of layers as residual blocks, (x + f(x)) / sqrt(2)
    activation: Literal["lrelu", "sine"] = "lrelu"  # of every ModFC layer
    circumference: int = 0         # 0: the plane; P >= resolution: x wraps around a cylinder of P pixels (Sec. 4.8)

    def validate(self) -> None:
        for name in ("z_dim", "w_dim", "mapping_layers", "width", "img_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.resolution < 2:
            raise ValueError(f"resolution must be at least 2 (Eq. 3 divides by W - 1), got {self.resolution}")
        if self.num_layers < 2 or self.num_layers % 2:
            raise ValueError(f"num_layers must be a positive even number (layers come in pairs), got {self.num_layers}")
        if not (self.fourier or self.embedding):
            raise ValueError("CIPS needs a positional encoding: enable fourier or embedding (or both)")
        if self.fourier and self.fourier_channels < 1:
            raise ValueError(f"fourier_channels must be positive, got {self.fourier_channels}")
        if self.embedding and self.embedding_channels < 1:
            raise ValueError(f"embedding_channels must be positive, got {self.embedding_channels}")
        if self.embedding_boundary not in ("wrap", "clamp"):
            raise ValueError(f"embedding_boundary must be 'wrap' or 'clamp', got {self.embedding_boundary!r}")
        if self.circumference and self.circumference < self.resolution:
            raise ValueError(f"circumference must be 0 (plane) or at least the resolution {self.resolution}, "
                             f"got {self.circumference}")
        if self.activation not in ("lrelu", "sine"):
            raise ValueError(f"activation must be 'lrelu' or 'sine', got {self.activation!r}")


def _modfc(in_channels: int, cfg: CIPSConfig) -> ModulatedConv2d:
    """ModFC (Eq. 2): modulated, demodulated fully-connected layer = 1x1 modulated conv, no noise."""
    return ModulatedConv2d(in_channels, cfg.width, 1, cfg.w_dim, activation=cfg.activation)


class CIPSBlock(nn.Module):
    """Two ModFC layers and, when this pair feeds the output, a to-RGB projection."""

    def __init__(self, cfg: CIPSConfig, torgb: bool) -> None:
        super().__init__()
        self.fc0 = _modfc(cfg.width, cfg)
        self.fc1 = _modfc(cfg.width, cfg)
        self.torgb = ToRGB(cfg.width, cfg.w_dim, cfg.img_channels) if torgb else None


class Generator(MappedGenerator):
    """G(z, grid) -> images in about [-1, 1]: [N, C, H, W] on a `Grid`, [N, C, P] on a `PointGrid`.

    ws layout (num_ws = num_layers + 2): ws[:, 0] the input projection, ws[:, l + 1] ModFC layer l,
    and the to-RGB after layer l shares ws[:, l + 2] with the next layer (StyleGAN2's convention).
    """

    family = "cips"
    # each pixel depends only on its own position: point sets and chunks; no noise inputs
    capabilities = frozenset({"shift", "roll", "zoom", "expand", "rotate", "truncation", "mixing", "points", "chunks"})

    def __init__(self, cfg: CIPSConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.num_ws = cfg.num_layers + 2
        self.mapping = self.build_mapping(cfg)
        canvas = (cfg.resolution, cfg.resolution)
        self.fourier = (FourierFeatures(cfg.fourier_channels, canvas, circumference=cfg.circumference or None,
                                        bias=cfg.fourier_bias) if cfg.fourier else None)
        lattice, boundary = canvas, cfg.embedding_boundary  # one vector per training pixel (Eq. 4)
        if cfg.circumference:  # one per pixel of the whole cylinder, periodic in x
            lattice, boundary = (cfg.resolution, cfg.circumference), (cfg.embedding_boundary, "wrap")
        self.embedding = LearnedConstant(cfg.embedding_channels, lattice, boundary=boundary) if cfg.embedding else None
        channels = (cfg.fourier_channels if cfg.fourier else 0) + (cfg.embedding_channels if cfg.embedding else 0)
        self.input = _modfc(channels, cfg)  # projects e(x, y) to the hidden width (App. A)
        pairs = cfg.num_layers // 2
        self.blocks = nn.ModuleList(CIPSBlock(cfg, torgb=cfg.skips or k == pairs - 1) for k in range(pairs))

    @property
    def coarsest_stride(self) -> int:
        """Every pixel is computed on its own: any whole-pixel shift moves the image exactly."""
        return 1

    def tiling(self) -> tuple[int, int]:
        return 1, min_tile_side(1, [(1, min(self.input.in_channels, self.cfg.width))])  # ModFC: 1x1 convolutions

    def memory_estimate(self, batch: int, grid: Grid | PointGrid | None = None,
                        options: RenderOptions = RenderOptions()) -> int:
        points = lattice_points(grid or self.default_grid())
        chunk = min(points, options.chunk_points or points)
        c_enc, width, c_img = self.input.in_channels, self.cfg.width, self.cfg.img_channels
        # per point of a chunk: the encoding (and its parts while they are built), its modulated copy, two
        # hidden layers and the elementwise result beside them, the skip images; the coordinates; the output
        per_point = 4 * (3 * c_enc + batch * (c_enc + 3 * width + 2 * c_img)) + COORD_BYTES
        held = 1.5 if chunk < points else 1  # chunk after chunk, the allocator holds on to up to one more chunk's worth
        return int(held * chunk * per_point) + 4 * batch * c_img * points

    def panorama_grid(self, height: int | None = None) -> Grid:
        """The whole 360-degree strip of a cylindrical model: `height` (default the resolution) rows
        from the top of the training crop, `circumference` columns (column P is column 0 again)."""
        if not self.cfg.circumference:
            raise ValueError("this CIPS model is planar (circumference 0): train with model.circumference=P "
                             "for panoramas")
        return Grid(height or self.resolution, self.cfg.circumference)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Positional encoding e(x, y) = concat[e_fo, e_co] (Eq. 4): coords [2, ...] -> [1, C, ...]."""
        return torch.cat([enc(coords) for enc in (self.fourier, self.embedding) if enc is not None], dim=1)

    def synthesize(self, ws: torch.Tensor, grid: Grid | PointGrid | None, options: RenderOptions) -> torch.Tensor:
        return self.synthesis(ws, grid, chunk_points=options.chunk_points, on_tile=options.on_tile)

    def synthesis(self, ws: torch.Tensor, grid: Grid | PointGrid | None = None, *, chunk_points: int | None = None,
                  on_tile: Callable[[int], None] | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images on `grid` (default: the training canvas).

        `chunk_points` renders at most that many points at a time (lattice tiles, or slices of a
        point set) into the output; under torch.no_grad peak activation memory is then bounded by
        the chunk, whatever the canvas size. The result equals a one-shot render. `on_tile(points)`
        is called after each chunk (progress reporting).
        """
        grid = self.default_grid() if grid is None else grid
        self.check_ws(ws)
        if chunk_points is not None and chunk_points < 1:
            raise ValueError(f"chunk_points must be positive, got {chunk_points}")
        n, c, dev, dtype = ws.shape[0], self.cfg.img_channels, ws.device, ws.dtype
        if isinstance(grid, PointGrid):
            coords = grid.coords(dev, dtype)  # [2, P]
            p = coords.shape[1]
            step = chunk_points or p
            out = ws.new_empty(n, c, p)
            for s in range(0, p, step):
                out[:, :, s:s + step] = self._render(ws, coords[:, s:s + step, None])[..., 0]  # a P x 1 lattice
                if on_tile is not None:
                    on_tile(min(step, p - s))
            return out
        if not isinstance(grid, Grid):
            raise TypeError(f"CIPS renders on a Grid or a PointGrid, got {type(grid).__name__}")
        h, w = grid.size
        tw = min(w, chunk_points or w)  # tiles of th x tw <= chunk_points pixels: row bands, or pieces of a row
        th = max(1, (chunk_points or h * w) // tw)
        out = ws.new_empty(n, c, h, w)
        for top in range(0, h, th):
            for left in range(0, w, tw):
                tile = grid.crop(top, left, min(th, h - top), min(tw, w - left))
                out[:, :, top:top + tile.height, left:left + tile.width] = self._render(ws, tile.coords(dev, dtype))
                if on_tile is not None:
                    on_tile(tile.height * tile.width)
        return out

    def _render(self, ws: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """ws [N, num_ws, w_dim], coords [2, h, w] -> [N, C, h, w]: the per-pixel perceptron."""
        x = self.encode(coords).to(ws.dtype).expand(ws.shape[0], -1, -1, -1)  # Eq. 4, [N, Cfo + Cco, h, w]
        x = self.input(x, ws[:, 0])  # [N, width, h, w]
        img = None
        for k, block in enumerate(self.blocks):
            y = block.fc1(block.fc0(x, ws[:, 2 * k + 1]), ws[:, 2 * k + 2])  # ModFC x 2, Eq. 2
            x = (x + y) * math.sqrt(0.5) if self.cfg.residual else y
            if block.torgb is not None:
                rgb = block.torgb(x, ws[:, 2 * k + 3])  # [N, C, h, w]
                img = rgb if img is None else img + rgb
        return img
