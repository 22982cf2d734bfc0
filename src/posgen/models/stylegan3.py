"""StyleGAN3-T and StyleGAN3-R: the alias-free generator.

Paper: Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021; the lecture notes
in ../shared/papers/004). What is implemented, by section of the paper:

- Sec. 3.1 (configs B-D): Fourier-feature input (frequencies uniform in the disc of radius
  f_c = 2, random phases, fixed), transformed by a learned affine of w (rotation + translation,
  identity at initialisation); no noise, no skips, a short mapping network; every layer divides
  its input by the running RMS of its features (an EMA of E[x^2] tracked in training).
- Sec. 3.2 (configs E-R): a margin of 10 samples around every layer's lattice, cropped by the last
  layers; modulated convolutions (3x3 for T, 1x1 for R); filtered leaky ReLU (upsample by m = 2,
  leaky ReLU, downsample; `posgen.ops.filters`) with Kaiser-windowed sinc filters of n = 6 taps per
  sample, the down filter radially symmetric (jinc) in config R except in the critically sampled
  layers; flexible layers: cutoffs growing geometrically from 2 to the output band limit, minimum
  stopbands from 2^2.1, sampling rates the next power of two holding the stopband, transition bands
  as wide as the rate allows, the last layers critically sampled (Fig. 4c).

posgen differs from the official code in one place on purpose: the user's transform is not a
mutable buffer but the `posgen.grid.Grid` being rendered on. The Fourier features are evaluated at
the frame coordinates of the first layer's lattice laid over the grid (`Grid.scale_coords`), so a
shifted, rotated or larger grid moves, turns or widens the input signal and the alias-free layers
carry it to the output (Eq. 1: every layer commutes with the transform up to its filters' stopband
leakage). Layer sizes come from the grid at forward time: any canvas size and aspect ratio.

Units: frequencies are in cycles per training-canvas width (the paper's s = canvas width in
samples); the canvas spans [-1/2, 1/2] with its centre at 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from posgen.grid import Grid
from posgen.models.base import COORD_BYTES, MappedGenerator, RenderOptions
from posgen.ops import EqualLinear, ModulatedConv2d
from posgen.ops.filters import FilteredLeakyReLU


@dataclass
class StyleGAN3Config:
    resolution: int = 256           # training canvas (square, power of two >= 16)
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2         # Sec. 3.1: the shorter mapping of StyleGAN2-ADA
    mapping_lr_multiplier: float = 0.01
    num_classes: int = 0           # > 0: class-conditional mapping, the class carried by z (ops/mapping.py)
    img_channels: int = 3
    equivariance: Literal["translation", "rotation"] = "translation"  # config T or R
    num_layers: int = 14            # N synthesis layers (Sec. 3.2: N = 14 at every resolution)
    num_critical: int = 2           # critically sampled layers at the end
    channel_base: int = 32768       # channels = min(channel_base / 2 / f_c, channel_max) (config G)
    channel_max: int = 512
    first_cutoff: float = 2.0       # f_c of the input and the first layer
    first_stopband: float = 2**2.1  # f_t,0
    last_stopband_rel: float = 2**0.3  # f_t = f_c * this at the last layer
    margin: int = 10                # samples around every lattice, cropped at the end (config E)
    filter_size: int = 6            # n: taps per sample of the lower rate
    magnification: int = 2          # m: temporary rate of the non-linearity
    conv_clamp: float | None = None  # the official code clamps at 256, a guard for its fp16 layers; in fp32
                                     # here it would cost about a fifth of a CPU step, so it is off by default
    output_scale: float = 0.25
    magnitude_ema_kimg: float = 20.0  # half-life (thousands of images) of the input-RMS tracker

    def validate(self) -> None:
        r = self.resolution
        if r < 16 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two >= 16, got {r}")
        if self.equivariance not in ("translation", "rotation"):
            raise ValueError(f"equivariance must be 'translation' or 'rotation', got {self.equivariance!r}")
        if not 0 <= self.num_critical < self.num_layers:
            raise ValueError(f"need 0 <= num_critical < num_layers, got {self.num_critical}, {self.num_layers}")
        if self.margin < 0 or self.filter_size < 1 or self.magnification < 1:
            raise ValueError("margin must be >= 0, filter_size and magnification >= 1")

    @property
    def kernel_size(self) -> int:
        return 1 if self.equivariance == "rotation" else 3  # Sec. 3.2, config R: 1x1 convolutions


@dataclass(frozen=True)
class LayerSpec:
    """The band of one lattice: sampling rate s, cutoff f_c, transition half-width f_h (cycles per
    canvas width), channels and margin (samples per side)."""

    rate: float
    cutoff: float
    half_width: float
    channels: int
    margin: int
    critical: bool


def layer_schedule(cfg: StyleGAN3Config) -> list[LayerSpec]:
    """Flexible layers (Sec. 3.2, Fig. 4c): specs of layers 0 .. N (N: the to-RGB layer)."""
    n, res = cfg.num_layers, cfg.resolution
    last_cutoff = res / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    specs = []
    for i in range(n + 1):
        e = min(i / (n - cfg.num_critical), 1.0)  # progression halted at the first critical layer
        cutoff = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** e
        stopband = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** e
        rate = 2 ** math.ceil(math.log2(min(2 * stopband, res)))  # holds f_t, at most the output rate
        half_width = max(stopband, rate / 2) - cutoff  # as wide as the rate allows, reaching f_t
        channels = cfg.img_channels if i == n else round(min(cfg.channel_base / 2 / cutoff, cfg.channel_max))
        margin = 0 if i >= n - 1 else cfg.margin  # the last layer and to-RGB: exactly the canvas
        specs.append(LayerSpec(rate, cutoff, half_width, channels, margin, i >= n - cfg.num_critical))
    return specs


class SynthesisInput(nn.Module):
    """Fourier features (Sec. 3.1): sin(2 pi (f . T_w(x)) + phi) at the first lattice's samples,
    then a learned channel mix. T_w is a rotation + translation predicted from w (config H),
    identity at initialisation; x are the frame coordinates the grid gives the lattice."""

    def __init__(self, w_dim: int, channels: int, bandwidth: float, rate: float, resolution: int) -> None:
        super().__init__()
        self.bandwidth, self.rate, self.resolution = bandwidth, rate, resolution
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        # a Gaussian's r^2 is exponential, so exp(-r^2 / 4) has a uniform square: uniform in the disc
        freqs = freqs / (radii * radii.square().exp().pow(0.25))
        self.register_buffer("freqs", freqs * bandwidth)  # [C, 2] cycles per canvas width, fixed
        self.register_buffer("phases", torch.rand(channels) - 0.5)  # [C] in cycles
        self.affine = EqualLinear(w_dim, 4)  # w -> (r_cos, r_sin, t_x, t_y)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.weight = nn.Parameter(torch.randn(channels, channels))

    def forward(self, w: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """w [N, w_dim], coords [2, h, w] frame positions (x, y) in canvas widths -> [N, C, h, w]."""
        t = self.affine(w)  # [N, 4]
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # unit rotation part
        c, s, tx, ty = t.unbind(1)
        # T_w(x) = R (x - t): rotate the plane about the canvas centre after moving it by t
        rot = torch.stack([torch.stack([c, -s], 1), torch.stack([s, c], 1)], 1)  # [N, 2, 2]
        freqs = self.freqs[None] @ rot  # [N, C, 2]: f . R x = (R^T f) . x
        phases = self.phases[None] - (freqs @ torch.stack([tx, ty], 1)[:, :, None]).squeeze(2)  # [N, C]
        phase = torch.einsum("nck,khw->nchw", freqs, coords.to(freqs)) + phases[:, :, None, None]
        x = torch.sin(phase * (2 * math.pi))  # [N, C, h, w]
        weight = self.weight / math.sqrt(self.weight.shape[0])
        return torch.einsum("dc,nchw->ndhw", weight, x)


class SynthesisLayer(nn.Module):
    """Modulated conv (+ bias) -> filtered leaky ReLU, from the lattice of `spec_in` to that of
    `spec_out` (Fig. 4b). The to-RGB layer: a 1x1 modulated conv without demodulation, no filters."""

    def __init__(self, spec_in: LayerSpec, spec_out: LayerSpec, cfg: StyleGAN3Config, *, torgb: bool = False,
                 radial: bool = False) -> None:
        super().__init__()
        self.spec_in, self.spec_out, self.torgb = spec_in, spec_out, torgb
        k = 1 if torgb else cfg.kernel_size
        self.conv = ModulatedConv2d(spec_in.channels, spec_out.channels, k, cfg.w_dim, padding="zero",
                                    demodulate=not torgb, activation=None)
        self.clamp = cfg.conv_clamp
        self.act = None if torgb else FilteredLeakyReLU(
            spec_in.rate, spec_out.rate, spec_in.cutoff, spec_in.half_width, spec_out.cutoff, spec_out.half_width,
            filter_size=cfg.filter_size, magnification=cfg.magnification, radial=radial, clamp=cfg.conv_clamp)
        self.register_buffer("magnitude_ema", torch.ones(()))
        self.ema_images = cfg.magnitude_ema_kimg * 1000

    def forward(self, x: torch.Tensor, w: torch.Tensor, canvas: tuple[int, int], resolution: int) -> torch.Tensor:
        """x [N, Cin, h, w] on the input lattice over a canvas (H, W) -> [N, Cout, h', w']."""
        if self.training and torch.is_grad_enabled():  # track E[x^2] (Sec. 3.1, config D)
            with torch.no_grad():
                beta = 0.5 ** (x.shape[0] / self.ema_images)
                self.magnitude_ema.lerp_(x.detach().square().mean(), 1 - beta)
        x = self.conv(x * self.magnitude_ema.rsqrt(), w)  # bias added at the input rate (commutes with up)
        if self.torgb:
            return x.clamp(-self.clamp, self.clamp) if self.clamp is not None else x
        si, so = self.spec_in, self.spec_out
        f_out = resolution / so.rate  # stride of the output in training pixels
        size = (round(canvas[0] / f_out) + 2 * so.margin, round(canvas[1] / f_out) + 2 * so.margin)
        return self.act(x, (-si.margin, -si.margin), (-so.margin, -so.margin), size)


class Generator(MappedGenerator):
    """G(z, grid) -> images [N, img_channels, grid.height, grid.width] in about [-1, 1].

    Renders whole lattices (no point sets). Equivariance to the grid's transforms is what the
    alias-free design buys: translations (whole and sub-pixel) for T and R, rotations for R.
    """

    family = "stylegan3"
    capabilities = frozenset({"shift", "expand", "rotate", "truncation", "mixing"})

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.specs = layer_schedule(cfg)
        n = cfg.num_layers
        self.num_ws = n + 2  # input, N layers, to-RGB
        self.mapping = self.build_mapping(cfg)
        s0 = self.specs[0]
        self.input = SynthesisInput(cfg.w_dim, s0.channels, s0.cutoff, s0.rate, cfg.resolution)
        radial = cfg.equivariance == "rotation"
        self.layers = nn.ModuleList(
            SynthesisLayer(self.specs[max(i - 1, 0)], self.specs[i], cfg, torgb=i == n,
                           radial=radial and not self.specs[i].critical)
            for i in range(n + 1))
        self.coarsest_stride = cfg.resolution // int(min(s.rate for s in self.specs))

    def synthesize(self, ws: torch.Tensor, grid: Grid | None, options: RenderOptions) -> torch.Tensor:
        return self.synthesis(ws, grid)  # no noise inputs: every noise mode renders the same

    def memory_estimate(self, batch: int, grid: Grid | None = None, options: RenderOptions = RenderOptions()) -> int:
        grid = grid or self.default_grid()
        s, res = self.coarsest_stride, self.resolution
        height, width = math.ceil(grid.height / s) * s, math.ceil(grid.width / s) * s

        def pixels(rate: float, margin: float) -> float:  # a lattice of `rate` over the canvas, widened by `margin`
            return (height * rate / res + 2 * margin) * (width * rate / res + 2 * margin)

        peak = 0.0
        for layer in self.layers:
            si, so = layer.spec_in, layer.spec_out
            p_in = pixels(si.rate, si.margin)
            floats = 2 * si.channels * p_in + 2 * so.channels * p_in  # the modulated input, the conv output
            if layer.act is not None:  # the temporary rate of the filtered non-linearity: three tensors there
                t = layer.act.tmp_rate
                floats += 3 * so.channels * pixels(t, si.margin * t / si.rate + self.cfg.filter_size * layer.act.up)
            peak = max(peak, 4 * batch * floats + COORD_BYTES * p_in)
        return int(peak)

    def synthesis(self, ws: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images on `grid` (default: the training canvas)."""
        grid, canvas = self.lattice_canvas(ws, grid, self.coarsest_stride)  # every layer's stride divides the canvas
        s0, res = self.specs[0], self.resolution
        stride = res // int(s0.rate)
        u = canvas.scale_coords(stride, s0.margin, device=ws.device, dtype=torch.float64)  # [2, h, w] scale units
        coords = ((stride * u + (stride - 1) / 2 + 0.5) / res - 0.5).to(ws.dtype)  # canvas widths, centre 0
        x = self.input(ws[:, 0], coords)  # [N, C0, h0, w0]
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i + 1], canvas.size, res)
        x = x * self.cfg.output_scale
        return x[:, :, : grid.height, : grid.width]
