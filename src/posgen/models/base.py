"""The generator contract: what every posgen family implements, and the one place where
options are checked against what a family can do.

A generator is a function of a latent and a grid (DESIGN.md). Every family subclasses
`Generator` and provides:

- `family` (its name in `posgen.families.FAMILIES`) and `capabilities` (a subset of
  `CAPABILITIES`): what its renders can be asked for;
- `default_grid()`: the training canvas;
- `latents(seeds, grid)`: one latent per seed, independent of batch composition. A latent is
  whatever the family renders from: z for GANs with a mapping network, a DDPM's x_T on the
  grid's lattice, a SinGAN's noise pyramid. Always a tensor with the seed index first, so
  batches are slices;
- `render(latents, grid, options)`: images [N, C, H, W] in about [-1, 1] on a `Grid` (or
  [N, C, P] on a `PointGrid` for families with the "points" capability);
- `memory_estimate(batch, grid, options)`: the peak bytes of such a render, from the layer sizes
  (what every render checks against the memory limit first, `posgen.memory`);
- `tiling()`: how tiles of a grid render exactly (`posgen.tiling`), or a one-line refusal saying why
  this family's pixels depend on where the canvas border is.

Everything that renders from seeds (`posgen.sampling.render_seeds`, metrics' `sample_fn`,
the CLI, the apps) goes through these methods only, so a new family works everywhere by
implementing them. Options the family lacks are refused by `require` with one line that names
the option, what it needs and the family: "--truncation needs a generator with a mapping
network; digits-ddpm is a ddpm model".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import torch
from torch import nn

from posgen.errors import CapabilityError
from posgen.grid import Grid, PointGrid
from posgen.ops.mapping import MappingNetwork, with_class
from posgen.ops.noise import NoiseMode

# capability -> what a generator needs to have it (the second half of a refusal)
CAPABILITIES: dict[str, str] = {
    "shift": "a generator that renders on shifted grids",
    "roll": "a generator that renders on circularly shifted grids",
    "zoom": "a generator that renders denser grids",
    "expand": "a generator that renders larger canvases",
    "rotate": "a generator that renders on rotated grids",
    "points": "a pixel-independent generator (cips)",
    "chunks": "a pixel-independent generator (cips)",
    "truncation": "a generator with a mapping network",
    "mixing": "a generator with per-layer styles",
    "noise": "a generator with noise inputs",
    "steps": "an iterative sampler (ddpm)",
    "classes": "a class-conditional generator (trained with model.num_classes)",
}


@dataclass(frozen=True)
class RenderOptions:
    """How to render; each field other than `on_tile` belongs to one capability (None: the family's default).

    truncation_psi: "truncation"; noise_mode: "noise" (default "const": a fixed field aligned with
    the grid); chunk_points: "chunks" (at most that many points per pass, bounding memory);
    steps / sampler: "steps"; label: "classes" (every latent draws this class, keeping the rest of
    its z); on_tile(points): progress callback for families that render in chunks.
    """

    truncation_psi: float = 1.0
    noise_mode: NoiseMode | None = None
    chunk_points: int | None = None
    steps: int | None = None
    sampler: str | None = None
    label: int | None = None
    on_tile: Callable[[int], None] | None = None


def requested_capabilities(options: RenderOptions, grid: Grid | PointGrid | None = None) -> dict[str, str]:
    """capability -> the option asking for it, for the non-default parts of `options` and `grid`."""
    asked: dict[str, str] = {}
    if options.truncation_psi != 1.0:
        asked["truncation"] = "truncation_psi"
    if options.noise_mode == "random":  # "const" and "off" hold trivially for a family without noise
        asked["noise"] = "noise_mode"
    if options.chunk_points is not None:
        asked["chunks"] = "chunk_points"
    if options.steps is not None or options.sampler is not None:
        asked["steps"] = "steps"
    if options.label is not None:
        asked["classes"] = "label"
    if isinstance(grid, PointGrid):
        asked["points"] = "a PointGrid"
    return asked


def require(G: "Generator", capability: str, option: str, model: str | None = None) -> None:
    """Refuse `option` in one line unless `G` declares `capability`.

    `model` names the generator in the message (a checkpoint or preset name); default its family.
    """
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}")
    if capability not in G.capabilities:
        who = f"{model} is a {G.family} model" if model else f"this is a {G.family} model"
        raise CapabilityError(f"{option} needs {CAPABILITIES[capability]}; {who}")


class Generator(nn.Module):
    """Base class of every family's generator (see the module docstring for the contract)."""

    family: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    resolution: int

    @classmethod
    def build(cls, run) -> "Generator":
        """A fresh generator from the whole run config (`posgen.config.RunConfig`); families whose
        generator needs more than the model section (a diffusion schedule, ...) override this."""
        return cls(run.model)

    def default_grid(self) -> Grid:
        """The training canvas."""
        return Grid(self.resolution, self.resolution)

    def latents(self, seeds: Sequence[int], grid: Grid | PointGrid | None = None) -> torch.Tensor:
        """One latent per seed, [len(seeds), ...], each drawn from its own seed only."""
        raise NotImplementedError

    def render(self, latents: torch.Tensor, grid: Grid | PointGrid | None = None,
               options: RenderOptions = RenderOptions()) -> torch.Tensor:
        """Images rendered from `latents` on `grid` (default: the training canvas)."""
        raise NotImplementedError

    def memory_estimate(self, batch: int, grid: Grid | PointGrid | None = None,
                        options: RenderOptions = RenderOptions()) -> int:
        """Peak bytes that `render` of `batch` latents on `grid` allocates beyond the weights (activations,
        coordinates, the output), computed from the layer sizes without running anything: what renders
        check against the memory limit (`posgen.memory`) before they start. Measured against the real
        peak in benchmarks/memory.py (README, "Benchmarks")."""
        raise NotImplementedError

    def tiling(self) -> tuple[int, int]:
        """(stride, minimum): tiles of a grid (`Grid.crop`) whose origins are multiples of `stride` lattice
        pixels and whose sides are at least `minimum` (or the whole canvas's) render exactly what the whole
        grid shows there, bit for bit (`posgen.tiling`). The stride is 1 for pixel-independent generators
        and the coarsest stride for padding-free convolutional ones; the minimum keeps every convolution of
        a tile above `NATIVE_CONV_ELEMENTS`, on the same algorithm as the whole canvas. Raises
        CapabilityError saying why for generators whose pixels depend on where the canvas border is."""
        raise CapabilityError(f"a {self.family} model cannot be rendered tile by tile exactly")

    def check(self, options: RenderOptions, grid: Grid | PointGrid | None = None, model: str | None = None) -> None:
        """Refuse, in one line, any option or grid this family cannot render."""
        for capability, option in requested_capabilities(options, grid).items():
            require(self, capability, option, model)


# ATen computes a float32 convolution whose batch-1 input has at most this many elements (3x3 kernels; any
# 1x1 kernel on one thread) with its native im2col + GEMM path and larger ones with oneDNN
# (ConvParams::use_mkldnn). Each path gives the same value for a pixel whatever the crop, but the two round
# differently, so an exact tile must put each of its convolutions on the path the whole canvas takes.
NATIVE_CONV_ELEMENTS = 20480


def min_tile_side(stride: int, scales: Sequence[tuple[int, int]]) -> int:
    """The smallest tile side, a multiple of `stride`, that puts every convolution's input above
    `NATIVE_CONV_ELEMENTS`, for convolutions at (stride f, input channels c) of the output grid (a tile
    of side T has at least (T / f)^2 input pixels at that scale)."""
    side = max(f * math.sqrt(NATIVE_CONV_ELEMENTS / c) for f, c in scales)
    return stride * (math.floor(side / stride) + 1)


# bytes per lattice point of the float64 coordinate arithmetic (`Grid.scale_coords`: meshgrid, stack, affine map)
# and of the float32 fields computed from it (coordinates, position-aligned noise) at the scale being rendered
COORD_BYTES = 128


def lattice_points(grid: Grid | PointGrid) -> int:
    """Output pixels (or points) of a grid."""
    return grid.points.shape[0] if isinstance(grid, PointGrid) else grid.height * grid.width


def seed_normal(seeds: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
    """One standard normal tensor of `shape` per seed, independent of batch composition: [len(seeds), *shape]."""
    return torch.stack([torch.randn(*shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


class MappedGenerator(Generator):
    """A family with a mapping network z -> w and a synthesis network on per-layer styles
    ws [N, num_ws, w_dim] (StyleGAN2, CIPS, StyleGAN3). Its latent is z [N, z_dim]; it
    implements `synthesize(ws, grid, options)`."""

    mapping: MappingNetwork
    num_ws: int

    def build_mapping(self, cfg) -> MappingNetwork:
        """The mapping network of a family config (z_dim, w_dim, mapping_layers, mapping_lr_multiplier,
        num_classes); a class-conditional one adds the "classes" capability to this generator."""
        if cfg.num_classes:
            self.capabilities = type(self).capabilities | {"classes"}
        return MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_multiplier, cfg.num_classes)

    def latents(self, seeds: Sequence[int], grid: Grid | PointGrid | None = None) -> torch.Tensor:
        return seed_normal(seeds, (self.cfg.z_dim,))

    def check(self, options: RenderOptions, grid: Grid | PointGrid | None = None, model: str | None = None) -> None:
        super().check(options, grid, model)
        if options.label is not None:
            classes = self.mapping.num_classes
            if not (isinstance(options.label, int) and 0 <= options.label < classes):
                raise CapabilityError(f"label {options.label} is not a class of {model or 'this model'}: "
                                      f"it draws classes 0..{classes - 1}")

    def render(self, latents: torch.Tensor, grid: Grid | PointGrid | None = None,
               options: RenderOptions = RenderOptions()) -> torch.Tensor:
        self.check(options, grid)
        if options.label is not None:
            latents = with_class(latents, options.label, self.mapping.num_classes)
        w = self.mapping(latents, options.truncation_psi)
        return self.synthesize(w.unsqueeze(1).expand(-1, self.num_ws, -1), grid, options)

    def forward(self, z: torch.Tensor, grid: Grid | PointGrid | None = None, **options) -> torch.Tensor:
        """`render(z, grid, RenderOptions(**options))`: G(z, grid, noise_mode="off")."""
        return self.render(z, grid, RenderOptions(**options))

    def synthesize(self, ws: torch.Tensor, grid: Grid | PointGrid | None, options: RenderOptions) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images on `grid`, with the options this family takes."""
        raise NotImplementedError

    def check_ws(self, ws: torch.Tensor) -> None:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must be [N, {self.num_ws}, w_dim], got {tuple(ws.shape)}")

    def lattice_canvas(self, ws: torch.Tensor, grid: Grid | PointGrid | None, stride: int) -> tuple[Grid, Grid]:
        """(grid, canvas) for a convolutional family: the grid to render (default the training one;
        a lattice, not a point set) and the canvas it is computed on, extended at the bottom and
        right so that `stride` divides both sides (the result is cropped back to the grid)."""
        grid = grid or self.default_grid()
        if not isinstance(grid, Grid):
            raise TypeError(f"{self.family} renders on a lattice Grid, got {type(grid).__name__}")
        self.check_ws(ws)
        return grid, grid.resize(math.ceil(grid.height / stride) * stride, math.ceil(grid.width / stride) * stride)
