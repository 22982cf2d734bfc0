"""SinGAN: a multi-scale generator learned from one image, with or without zero padding and with
the positional encodings of Xu et al.

Papers: Shaham et al., "SinGAN: Learning a Generative Model from a Single Natural Image" (ICCV
2019): an image pyramid (scale factor about 0.75, coarsest side about 25 px), one generator and
one patch discriminator of five 3x3 conv blocks per scale, each generator adding a residual to
the upsampled output of the scale below. Xu et al., "Positional Encoding as Spatial Inductive
Bias in GANs" (CVPR 2021): zero padding is SinGAN's implicit positional encoding (Sec. 3.2,
Fig. 1); a padding-free SinGAN loses the layout; an explicit encoding at the coarsest scale,
added to its noise map ("position-aligned noise", Sec. 3.6), gives it back: the Cartesian grid
(Eq. 6) keeps anchors, the sinusoid (Eq. 8) keeps patch recurrence (Fig. 7).

Padding (constructor argument, `SinGANConfig.padding`):
  "input" the official code: valid convs, the input of every scale zero-padded once by 5 px;
  "zero"  zero padding in every conv;
  "none"  padding-free: each scale computes on a lattice widened by margins, so valid convs
          produce exactly the output grid and every pixel is a function of noise only.

Rendering on a `posgen.grid.Grid`: scale s has density rho_s (output pixels per training pixel,
1 at the finest scale), its lattice covers ceil(H rho_s) x ceil(W rho_s) feature pixels, and
feature pixel a sits at output index (a + 1/2) / rho_s - 1/2 (pixel centres, the convention of
`Grid.scale_coords` with stride 1/rho_s). Noise is a fixed field on each scale's integer lattice
looked up at the grid's coordinates (`posgen.ops.lattice_noise`), so a wider canvas extends the
same noise and a shifted grid moves it with the content.

The latent of one seed is its noise pyramid for a grid, flattened: for s = 0 (coarsest) .. S-1
the noise map [C_s, h_s, w_s] of scale s in row-major order, concatenated, where C_0 is the
coarsest input's channels (3, or the encoding's channels) and C_s = 3 above it, and (h_s, w_s)
is `Generator.spans(grid)[s]` (the lattice plus margins in padding-free mode).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posgen.encodings import CartesianGrid, SinusoidalEncoding
from posgen.errors import ConfigError
from posgen.grid import Grid, PointGrid
from posgen.models.base import Generator as BaseGenerator
from posgen.models.base import COORD_BYTES, RenderOptions
from posgen.ops import lattice_noise

Padding = Literal["input", "zero", "none"]
Encoding = Literal["none", "cartesian", "sinusoid"]
PADDINGS, ENCODINGS = ("input", "zero", "none"), ("none", "cartesian", "sinusoid")
_EPS = 1e-6  # lattice sizes are ceil(n * rho); keep float error from adding a pixel
_STREAM_SAMPLE, _STREAM_RECONSTRUCTION = 0, 1


@dataclass
class SinGANConfig:
    image_size: tuple[int, int] = (0, 0)  # (H, W) of the finest scale; (0, 0): the trainer sets it from the image
    max_size: int = 250            # the training image is scaled so its longer side is at most this
    min_size: int = 25             # the coarsest scale's shorter side
    scale_factor: float = 0.75     # initial factor; adjusted so the coarsest shorter side is exactly min_size
    channels: int = 32             # conv channels at the coarsest scale, doubled every 4 scales ...
    max_channels: int = 128        # ... up to this
    num_layers: int = 5            # 3x3 conv blocks per scale (generator and discriminator)
    padding: Padding = "input"
    encoding: Encoding = "none"    # positional encoding added to the coarsest noise (Xu Sec. 3.6)
    encoding_canvas: Literal["expand", "interp"] = "expand"  # CSG: "expand" a function of the frame (a wider
    # canvas extends it); "interp" normalised to the rendered canvas (anchors stay at its corners, Xu Fig. 7b)
    sinusoid_channels: int = 8     # SPE channels (multiple of 4), Xu Eq. 8 frequencies on raw coarse indices

    def validate(self) -> None:
        if self.padding not in PADDINGS or self.encoding not in ENCODINGS:
            raise ValueError(f"model.padding must be one of {PADDINGS} and model.encoding one of {ENCODINGS}")
        if self.encoding_canvas not in ("expand", "interp"):
            raise ValueError(f"model.encoding_canvas must be 'expand' or 'interp', got {self.encoding_canvas!r}")
        if self.encoding_canvas == "interp" and self.encoding != "cartesian":
            raise ValueError("model.encoding_canvas='interp' applies to the Cartesian grid (encoding='cartesian') only")
        if not 0 < self.scale_factor < 1:
            raise ValueError(f"model.scale_factor must lie in (0, 1), got {self.scale_factor}")
        if self.min_size < 8 or self.max_size < self.min_size:
            raise ValueError(f"model.min_size must be >= 8 and <= model.max_size, got {self.min_size}, {self.max_size}")
        if self.channels < 1 or self.max_channels < self.channels or self.num_layers < 2:
            raise ValueError("model.channels must be positive, <= model.max_channels, and model.num_layers >= 2")
        if self.sinusoid_channels < 4 or self.sinusoid_channels % 4 or self.sinusoid_channels > 16:
            raise ValueError(f"model.sinusoid_channels must be 4, 8, 12 or 16, got {self.sinusoid_channels}")
        h, w = self.image_size
        if (h, w) != (0, 0) and (min(h, w) < self.min_size or max(h, w) > self.max_size):
            raise ValueError(f"model.image_size {h}x{w} must have sides in [{self.min_size}, {self.max_size}]")

    @property
    def trained_size(self) -> tuple[int, int]:
        if tuple(self.image_size) == (0, 0):
            raise ConfigError("model.image_size is not set: a SinGAN's pyramid comes from its training image "
                              "(the trainer sets it)")
        return int(self.image_size[0]), int(self.image_size[1])

    @property
    def densities(self) -> list[float]:
        """rho_s, coarsest to finest (rho = 1 at the finest scale)."""
        return pyramid(self.trained_size, self.min_size, self.scale_factor)

    @property
    def num_scales(self) -> int:
        return len(self.densities)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """The training pyramid (h_s, w_s), coarsest to finest."""
        h, w = self.trained_size
        return [(scaled(h, r), scaled(w, r)) for r in self.densities]

    def channels_at(self, s: int) -> int:
        """Conv channels at scale s (0 = coarsest): the official nfc doubling every 4 scales."""
        return min(self.channels * 2 ** (s // 4), self.max_channels)

    @property
    def input_channels(self) -> int:
        """Channels of the coarsest input (noise plus encoding)."""
        return {"none": 3, "cartesian": CartesianGrid.out_channels, "sinusoid": self.sinusoid_channels}[self.encoding]

    @property
    def margin(self) -> int:
        """Pixels each 3x3 valid-conv stack eats per side: num_layers * (3 - 1) / 2."""
        return self.num_layers


def scaled(n: int, rho: float) -> int:
    """Lattice length of a scale with density rho over n output pixels: ceil(n rho), as the official imresize."""
    return max(1, math.ceil(n * rho - _EPS))


def fit_image_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """The training image size: the longer side scaled down to at most `max_size` (never up)."""
    s = min(max_size / max(height, width), 1.0)
    return scaled(height, s), scaled(width, s)


def pyramid(image_size: tuple[int, int], min_size: int, scale_factor: float) -> list[float]:
    """Densities rho_s (coarsest first) of SinGAN's pyramid: N = ceil(log(min_size / min side) /
    log(scale_factor)) steps, the factor adjusted to r = (min_size / min side)^(1/N) so the coarsest
    shorter side is min_size; rho_s = r^(N - s)."""
    short = min(image_size)
    if short <= min_size:
        return [1.0]
    n = math.ceil(math.log(min_size / short) / math.log(scale_factor) - _EPS)
    r = (min_size / short) ** (1 / n)
    return [r ** (n - s) for s in range(n + 1)]


class Span(NamedTuple):
    """A window of one scale's integer lattice: rows top .. top+height-1, columns left .. left+width-1."""

    top: int
    left: int
    height: int
    width: int

    def grow(self, m: int) -> "Span":
        return Span(self.top - m, self.left - m, self.height + 2 * m, self.width + 2 * m)


def lattice_coords(grid: Grid, rho: float, span: Span) -> torch.Tensor:
    """Coordinates (x, y) in units of the scale with density rho of the lattice window `span`, [2, h, w].

    Feature pixel a sits at output index i = (a + 1/2) / rho - 1/2 and has coordinate
    u = rho (X(i) + 1/2) - 1/2 (X: the grid's affine map), so u = a on the training grid and a shift
    of k output pixels shifts u by k rho; `Grid.scale_coords(1 / rho, m)` for symmetric windows.
    """
    a_y = torch.arange(span.top, span.top + span.height, dtype=torch.float64)
    a_x = torch.arange(span.left, span.left + span.width, dtype=torch.float64)
    iy, ix = torch.meshgrid((a_y + 0.5) / rho - 0.5, (a_x + 0.5) / rho - 0.5, indexing="ij")
    xy = torch.einsum("rk,khw->rhw", grid.affine[:2], torch.stack([ix, iy, torch.ones_like(ix)]))
    u = rho * (xy + 0.5) - 0.5  # [2, h, w]
    if grid.period is not None:
        u = torch.remainder(u, rho * torch.tensor([grid.period[1], grid.period[0]], dtype=torch.float64).view(2, 1, 1))
    return u


def resample(x: torch.Tensor, src: Span, dst: Span, q: float) -> torch.Tensor:
    """x [N, C, src.height, src.width] on window `src` of a scale -> window `dst` of the next finer
    scale, q = rho_coarse / rho_fine < 1. Bicubic, pixel centres aligned ((a' + 1/2) q = a + 1/2);
    positions beyond `src` take the border value (only the padded modes reach them)."""
    n = x.shape[0]
    a_y = (torch.arange(dst.top, dst.top + dst.height, dtype=torch.float64) + 0.5) * q - 0.5
    a_x = (torch.arange(dst.left, dst.left + dst.width, dtype=torch.float64) + 0.5) * q - 0.5
    # align_corners=True: -1 and 1 are the centres of src's first and last pixels
    gy = 2 * (a_y - src.top) / max(src.height - 1, 1) - 1
    gx = 2 * (a_x - src.left) / max(src.width - 1, 1) - 1
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    g = torch.stack([xx, yy], dim=-1).to(x)[None].expand(n, -1, -1, -1)  # [N, h, w, 2] (x, y)
    return F.grid_sample(x, g, mode="bicubic", padding_mode="border", align_corners=True)


def _needed(span: Span, q: float) -> Span:
    """The window of the coarser scale whose bicubic resampling covers `span` of the finer one
    (support floor(a) - 1 .. floor(a) + 2)."""
    top = math.floor((span.top + 0.5) * q - 0.5) - 1
    left = math.floor((span.left + 0.5) * q - 0.5) - 1
    bottom = math.floor((span.top + span.height - 0.5) * q - 0.5) + 2
    right = math.floor((span.left + span.width - 0.5) * q - 0.5) + 2
    return Span(top, left, bottom - top + 1, right - left + 1)


def conv_block(c_in: int, c_out: int, padding: int) -> nn.Sequential:
    """3x3 conv, batch norm, LeakyReLU(0.2): the official ConvBlock."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=padding), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def conv_stack(c_in: int, channels: int, c_out: int, num_layers: int, padding: int) -> nn.Sequential:
    """num_layers 3x3 convs: a head and num_layers - 2 body blocks (conv, BN, LeakyReLU), and a tail conv."""
    layers = [conv_block(c_in, channels, padding)]
    layers += [conv_block(channels, channels, padding) for _ in range(num_layers - 2)]
    layers.append(nn.Conv2d(channels, c_out, 3, padding=padding))
    stack = nn.Sequential(*layers)
    for m in stack.modules():  # the official weights_init
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return stack


class ScaleGenerator(nn.Module):
    """One scale: x = tanh(convs(z)) + prev, z = noise_amp * noise + prev (the residual of SinGAN Fig. 5)."""

    def __init__(self, c_in: int, channels: int, num_layers: int, padding: Padding) -> None:
        super().__init__()
        self.padding, self.margin = padding, num_layers
        self.body = conv_stack(c_in, channels, 3, num_layers, 1 if padding == "zero" else 0)

    def forward(self, z: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """z [N, C_in, h', w'], prev [N, 3, h', w'] on the input window -> [N, 3, h, w] on the output window
        (h' = h except padding-free, where h' = h + 2 * margin)."""
        if self.padding == "input":  # the official single zero pad of the input
            z = F.pad(z, [self.margin] * 4)
        x = torch.tanh(self.body(z))
        if self.padding == "none":
            m = self.margin
            prev = prev[..., m:prev.shape[-2] - m, m:prev.shape[-1] - m]
        return x + prev


class PatchDiscriminator(nn.Module):
    """SinGAN's Markovian critic: num_layers 3x3 convs -> a map of patch scores [N, 1, h', w']
    (valid convs unless padding is "zero", as the official WDiscriminator)."""

    def __init__(self, channels: int, num_layers: int = 5, padding: Padding = "input") -> None:
        super().__init__()
        self.body = conv_stack(3, channels, 1, num_layers, 1 if padding == "zero" else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Generator(BaseGenerator):
    """The whole pyramid of scale generators, rendering on any `Grid` (see the module docstring).

    Buffers: `noise_amp` [S], the noise amplitude of every scale (1 at the coarsest; 0.1 x the
    reconstruction RMSE above it, set by the trainer).
    """

    family = "singan"
    capabilities = frozenset({"shift", "expand"})

    def __init__(self, cfg: SinGANConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.image_size = cfg.trained_size
        self.densities = cfg.densities
        self.num_scales = len(self.densities)
        self.resolution = max(self.image_size)
        self.scales = nn.ModuleList(
            ScaleGenerator(cfg.input_channels if s == 0 else 3, cfg.channels_at(s), cfg.num_layers, cfg.padding)
            for s in range(self.num_scales))
        self.register_buffer("noise_amp", torch.ones(self.num_scales))
        if cfg.encoding == "sinusoid":  # Xu Eq. 8 on the coarsest lattice's raw indices
            self.encoding: nn.Module | None = SinusoidalEncoding(cfg.sinusoid_channels, frequencies="xu")
        else:
            self.encoding = None

    def default_grid(self) -> Grid:
        return Grid(*self.image_size)

    # ---- lattices ------------------------------------------------------------------------
    def spans(self, grid: Grid | None = None, upto: int | None = None) -> list[tuple[Span, Span]]:
        """(input window, output window) of every scale 0 .. upto (default: the finest) for `grid`.

        Padded modes: both are the scale's lattice [0, ceil(H rho_s)) x [0, ceil(W rho_s)). Padding-free:
        the last scale outputs exactly that lattice; each scale's input is its output widened by the
        margin of its valid convs, and each output covers the bicubic support of the next input.
        """
        grid = grid or self.default_grid()
        last = self.num_scales - 1 if upto is None else upto
        rhos = self.densities
        out = []
        if self.cfg.padding != "none":
            for s in range(last + 1):
                lattice = Span(0, 0, scaled(grid.height, rhos[s]), scaled(grid.width, rhos[s]))
                out.append((lattice, lattice))
            return out
        o = Span(0, 0, scaled(grid.height, rhos[last]), scaled(grid.width, rhos[last]))
        for s in range(last, -1, -1):
            i = o.grow(self.cfg.margin)
            out.append((i, o))
            if s:
                o = _needed(i, rhos[s - 1] / rhos[s])
        return out[::-1]

    def noise_shapes(self, grid: Grid | None = None, upto: int | None = None) -> list[tuple[int, int, int]]:
        """[C_s, h_s, w_s] of every scale's noise map (the latent layout)."""
        return [(self.cfg.input_channels if s == 0 else 3, i.height, i.width)
                for s, (i, _) in enumerate(self.spans(grid, upto))]

    def positional_encoding(self, grid: Grid | None = None, span: Span | None = None) -> torch.Tensor | None:
        """The coarsest scale's encoding on `span` (default: its input window for `grid`), [1, C_0, h, w];
        None without one. Added to the coarsest noise map: position-aligned noise (Xu Sec. 3.6)."""
        if self.cfg.encoding == "none":
            return None
        grid = grid or self.default_grid()
        span = span or self.spans(grid, 0)[0][0]
        rho = self.densities[0]
        coords = lattice_coords(grid, rho, span).float()  # [2, h, w] (x, y)
        if self.cfg.encoding == "sinusoid":
            return self.encoding(coords)
        ref = self.cfg.sizes[0]  # Eq. 6 with the training canvas's coarsest H, W
        if self.cfg.encoding_canvas == "interp":  # Eq. 6 with the rendered canvas's H, W: anchors at its corners
            h, w = scaled(grid.height, rho), scaled(grid.width, rho)
            coords = coords * torch.tensor([ref[1] / w, ref[0] / h], dtype=coords.dtype).view(2, 1, 1)
        return CartesianGrid(ref)(coords)  # Eq. 6

    # ---- latents -------------------------------------------------------------------------
    def noise_pyramid(self, seeds: Sequence[int], grid: Grid | None = None, upto: int | None = None,
                      stream: int = _STREAM_SAMPLE, count: int | None = None) -> list[torch.Tensor]:
        """Per scale 0 .. upto [len(seeds), C_s, h_s, w_s]: the fixed lattice field of (seed, scale, channel)
        on the scale's input window (`stream` 1: the reconstruction's field); `count`: only the first scales."""
        grid = self._lattice_grid(grid)
        maps = []
        for s, (i, _) in enumerate(self.spans(grid, upto)[:count]):
            coords = lattice_coords(grid, self.densities[s], i)
            c = self.cfg.input_channels if s == 0 else 3
            maps.append(torch.stack([torch.cat([lattice_noise(coords, _noise_key(seed, s, ch, stream))[0]
                                                for ch in range(c)]) for seed in seeds]).float())
        return maps

    def latents(self, seeds: Sequence[int], grid: Grid | PointGrid | None = None) -> torch.Tensor:
        """[len(seeds), sum_s C_s h_s w_s]: each seed's noise pyramid for `grid`, flattened (module docstring)."""
        grid = self._lattice_grid(grid)
        return torch.cat([m.flatten(1) for m in self.noise_pyramid(seeds, grid)], dim=1)

    def reconstruction_noise(self, grid: Grid | None = None, upto: int | None = None) -> list[torch.Tensor]:
        """The fixed noise of the reconstruction loss: a fixed field at the coarsest scale, zeros above
        (SinGAN Sec. 2.2), per scale [1, C_s, h_s, w_s]."""
        grid = self._lattice_grid(grid)
        maps = self.noise_pyramid([0], grid, upto, _STREAM_RECONSTRUCTION, count=1)
        maps += [torch.zeros(1, *shape) for shape in self.noise_shapes(grid, upto)[1:]]
        return maps

    def reconstruction_latents(self, grid: Grid | None = None) -> torch.Tensor:
        """`reconstruction_noise` in the latent layout, [1, L]: `render` of it reproduces the training image."""
        return torch.cat([m.flatten(1) for m in self.reconstruction_noise(grid)], dim=1)

    def split(self, latents: torch.Tensor, grid: Grid | None = None, upto: int | None = None) -> list[torch.Tensor]:
        """Latents [N, L] -> per scale [N, C_s, h_s, w_s] (the inverse of the flattening)."""
        shapes = self.noise_shapes(grid, upto)
        total = sum(math.prod(s) for s in shapes)
        if latents.ndim != 2 or latents.shape[1] != total:
            raise ValueError(f"SinGAN latents for this grid must be [N, {total}], got {tuple(latents.shape)}: "
                             "make them with latents(seeds, grid) for the same grid")
        parts = torch.split(latents, [math.prod(s) for s in shapes], dim=1)
        return [p.reshape(len(latents), *s) for p, s in zip(parts, shapes)]

    # ---- rendering -----------------------------------------------------------------------
    def render(self, latents: torch.Tensor, grid: Grid | PointGrid | None = None,
               options: RenderOptions = RenderOptions()) -> torch.Tensor:
        self.check(options, grid)
        grid = self._lattice_grid(grid)
        return self.synthesize(self.split(latents, grid), grid)

    def forward(self, latents: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        return self.render(latents, grid)

    def memory_estimate(self, batch: int, grid: Grid | PointGrid | None = None,
                        options: RenderOptions = RenderOptions()) -> int:
        grid = self._lattice_grid(grid)
        peak = 0
        for s, (i, _) in enumerate(self.spans(grid)):
            # a conv's input and output, batch norm's and the activation's results beside them, and about
            # as much again that the allocator holds from the scales before (measured); the residual, the
            # noise, the resampling grid, the output
            pixels = i.height * i.width
            peak = max(peak, pixels * (4 * batch * (6 * self.cfg.channels_at(s) + 16) + COORD_BYTES))
        noise = 4 * batch * sum(c * h * w for c, h, w in self.noise_shapes(grid))  # the latents, and their split
        return peak + 2 * noise

    def synthesize(self, noise: list[torch.Tensor], grid: Grid | None = None, upto: int | None = None) -> torch.Tensor:
        """Noise maps of scales 0 .. k-1 (k = len(noise); shapes from `noise_shapes(grid, upto)`) -> the
        output of scale k-1 [N, 3, h, w] on its output window for target scale `upto` (default: k-1; the
        finest scale's window is exactly the grid's lattice)."""
        grid = self._lattice_grid(grid)
        spans = self.spans(grid, len(noise) - 1 if upto is None else upto)
        x = None
        for s, z_s in enumerate(noise):
            prev = self.upsampled(s, x, spans, z_s)
            x = self.scales[s](self.scale_input(s, z_s, prev, grid, spans[s][0]), prev)  # [N, 3, h_o, w_o]
        return x

    def upsampled(self, s: int, below: torch.Tensor | None, spans: list[tuple[Span, Span]],
                  noise: torch.Tensor) -> torch.Tensor:
        """The residual input of scale s on its input window: the output of scale s - 1 resampled by
        rho_s / rho_{s-1} (zeros at the coarsest scale), [N, 3, h_i, w_i]."""
        if s == 0:
            return noise.new_zeros(noise.shape[0], 3, *noise.shape[2:]).to(self.noise_amp.device)
        return resample(below, spans[s - 1][1], spans[s][0], self.densities[s - 1] / self.densities[s])

    def scale_input(self, s: int, noise: torch.Tensor, prev: torch.Tensor, grid: Grid, span: Span) -> torch.Tensor:
        """What scale s's convs see: noise_amp_s * noise + prev, and at the coarsest scale the positional
        encoding added to the noise instead (position-aligned noise N(PE, amp^2), Xu Sec. 3.6)."""
        noise = noise.to(self.noise_amp.device)
        if s == 0:
            z = self.noise_amp[0] * noise
            pe = self.positional_encoding(grid, span)
            return z if pe is None else z + pe.to(z)
        return self.noise_amp[s] * noise + prev

    def _lattice_grid(self, grid: Grid | PointGrid | None) -> Grid:
        if grid is None:
            return self.default_grid()
        if not isinstance(grid, Grid):
            raise TypeError(f"SinGAN renders on a lattice Grid, got {type(grid).__name__}")
        return grid


def _noise_key(seed: int, scale: int, channel: int, stream: int) -> int:
    """One integer per noise field: 20 bits of seed, 5 of scale, 4 of channel, 1 of stream."""
    return ((((int(seed) & 0xFFFFF) * 32 + scale) * 16 + channel) * 2 + stream)
