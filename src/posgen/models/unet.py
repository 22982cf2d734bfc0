"""DDPM U-Net with multi-scale positional encoding.

Papers: Ho et al., *Denoising Diffusion Probabilistic Models* (2020), for the network (a U-Net of
residual blocks with GroupNorm, a sinusoidal timestep embedding added in every block,
self-attention at the lowest resolution, Sec. 4 / App. B); Choi et al., *Toward Spatially
Unbiased Generative Models* (ICCV 2021), Sec. 4.5 and App. C.2, for MS-PE in it: a 2-D
sinusoidal encoding, scaled by a learnable gamma (Eq. 3), added after the residual blocks of
every encoder level and after every upsampling.

The encodings are computed from the grid (`Grid.scale_coords` at each level's stride), so the
network denoises on shifted grids and larger or non-square canvases; without MS-PE it has only
zero padding to tell where it is (the biased baseline of Choi Fig. 9).

The generator (`DDPM`) renders by running the reverse process of `posgen.diffusion` from x_T,
its latent: one standard normal image per seed on the grid's lattice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posgen.diffusion import SAMPLERS, GaussianDiffusion, latent_generators
from posgen.encodings import SinusoidalEncoding
from posgen.errors import CapabilityError
from posgen.grid import Grid, PointGrid
from posgen.models.base import COORD_BYTES, Generator, RenderOptions, seed_normal


@dataclass
class UNetConfig:
    resolution: int = 32                      # training canvas (square)
    img_channels: int = 3
    channels: int = 64                        # base width; level l has channels * channel_mult[l]
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one entry per resolution: 32, 16, 8 (Choi 64x64: four)
    num_res_blocks: int = 2                   # per encoder level (the decoder has one more)
    attention_resolutions: tuple[int, ...] | None = None  # None: the lowest resolution only (Choi C.2)
    dropout: float = 0.0
    norm_groups: int = 32                     # GroupNorm groups (fewer when a width has fewer channels)
    positional_encoding: Literal["none", "sinusoid"] = "none"  # "sinusoid": MS-PE (Choi Sec. 4.5)
    gamma_init: float = 1.0                   # MS-PE gamma at start (Choi Eq. 3)
    sinusoid_frequencies: Literal["choi", "xu", "endpoint"] = "choi"
    # the diffusion process (posgen.diffusion): Ho et al.'s linear schedule
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    variance: Literal["beta", "posterior"] = "beta"  # sigma_t^2 of the ancestral sampler (Ho Sec. 3.2)
    clip: bool = True                         # clip the predicted x_0 to [-1, 1] while sampling
    # rendering defaults (RenderOptions.steps / .sampler override them)
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    ddpm_steps: int = 1000                    # ancestral steps (< timesteps: respaced)
    ddim_steps: int = 50
    eta: float = 0.0                          # DDIM stochasticity (0: deterministic)

    @property
    def levels(self) -> int:
        return len(self.channel_mult)

    @property
    def attention_strides(self) -> tuple[int, ...]:
        res = self.attention_resolutions
        if res is None:
            return (2 ** (self.levels - 1),)
        return tuple(self.resolution // r for r in res)

    def validate(self) -> None:
        if self.resolution < 4 or self.resolution % 2 ** (self.levels - 1):
            raise ValueError(f"model.resolution {self.resolution} must be divisible by 2^(levels-1) = "
                             f"{2 ** (self.levels - 1)}")
        if self.channels < 4 or not self.channel_mult or min(self.channel_mult) < 1 or self.num_res_blocks < 1:
            raise ValueError("model.channels must be >= 4, channel_mult non-empty positive, num_res_blocks >= 1")
        if self.positional_encoding == "sinusoid" and any(self.channels * m % 4 for m in self.channel_mult):
            raise ValueError("MS-PE needs every level's width (channels * channel_mult) divisible by 4")
        for r in self.attention_resolutions or ():
            if r < 1 or self.resolution % r or (self.resolution // r) not in [2**k for k in range(self.levels)]:
                raise ValueError(f"model.attention_resolutions: {r} is not one of the U-Net's resolutions")
        if not 0 <= self.dropout < 1 or self.norm_groups < 1:
            raise ValueError("model.dropout must be in [0, 1) and model.norm_groups positive")
        if self.timesteps < 2 or not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError("model.timesteps must be >= 2 and 0 < beta_start <= beta_end < 1")
        if not (1 <= self.ddpm_steps <= self.timesteps and 1 <= self.ddim_steps <= self.timesteps) or self.eta < 0:
            raise ValueError("model.ddpm_steps and model.ddim_steps must be in [1, model.timesteps] and model.eta >= 0")


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoids of the timestep as Ho et al.'s code lays them out: [sin | cos] halves,
    frequencies 10000^(-k/(dim/2 - 1)). t [N] -> [N, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    phase = t.float()[:, None] * freqs[None]  # [N, half]
    emb = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = math.gcd(channels, groups)
    return nn.GroupNorm(g, channels, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialised last layers (Ho et al.'s code): every residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, + the projected time embedding, GroupNorm -> SiLU -> dropout -> conv3x3,
    plus a (1x1-projected) skip."""

    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm0, self.conv0 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm1, self.dropout = _norm(cout, groups), nn.Dropout(dropout)
        self.conv1 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x)))                   # [N, cout, H, W]
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all positions, residual (Ho et al. at 16x16 / Choi at 8x8)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)  # each [N, C, HW]
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # [N, HW, C]
        return x + self.proj(a.transpose(1, 2).reshape(n, c, h, w))


class ScaleEncoding(nn.Module):
    """gamma * PE(coordinates at one stride) (Choi Eq. 3), [1, C, h, w] for a grid."""

    def __init__(self, channels: int, stride: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.stride = stride
        self.encoding = SinusoidalEncoding(channels, frequencies=cfg.sinusoid_frequencies)
        self.gamma = nn.Parameter(torch.tensor(float(cfg.gamma_init)))

    def forward(self, grid: Grid, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self.gamma.to(dtype) * self.encoding(grid.scale_coords(self.stride, device=device, dtype=dtype))


class UNet(nn.Module):
    """eps_theta(x_t, t, grid): the noise in x_t [N, C, H, W] on `grid` (default: a lattice of x's size)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ch, g, temb_dim = cfg.channels, cfg.norm_groups, 4 * cfg.channels
        mspe = cfg.positional_encoding == "sinusoid"
        self.temb = nn.Sequential(nn.Linear(ch, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.conv_in = nn.Conv2d(cfg.img_channels, ch, 3, padding=1)
        attn = set(cfg.attention_strides)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, temb_dim, cfg.dropout, g)

        # encoder: per level num_res_blocks blocks (+ attention), MS-PE, downsample (not after the last)
        self.down = nn.ModuleList()
        skips, c = [ch], ch
        for level, mult in enumerate(cfg.channel_mult):
            stride, cout = 2**level, ch * mult
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(nn.ModuleList([res(c, cout), AttentionBlock(cout, g) if stride in attn else nn.Identity()]))
                c = cout
                skips.append(c)
            stage = nn.Module()
            stage.blocks = blocks
            stage.pe = ScaleEncoding(c, stride, cfg) if mspe else None
            stage.downsample = nn.Conv2d(c, c, 3, stride=2, padding=1) if level + 1 < cfg.levels else None
            if stage.downsample is not None:
                skips.append(c)
            self.down.append(stage)
        self.mid = nn.ModuleList([res(c, c), AttentionBlock(c, g), res(c, c)])
        # decoder: per level num_res_blocks + 1 blocks on concatenated skips, upsample + MS-PE (not after the last)
        self.up = nn.ModuleList()
        for level in reversed(range(cfg.levels)):
            stride, cout = 2**level, ch * cfg.channel_mult[level]
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(nn.ModuleList([res(c + skips.pop(), cout),
                                             AttentionBlock(cout, g) if stride in attn else nn.Identity()]))
                c = cout
            stage = nn.Module()
            stage.blocks = blocks
            stage.upsample = nn.Conv2d(c, c, 3, padding=1) if level > 0 else None
            stage.pe = ScaleEncoding(c, stride // 2, cfg) if mspe and level > 0 else None
            self.up.append(stage)
        self.norm_out = _norm(c, g)
        self.conv_out = _zero(nn.Conv2d(c, cfg.img_channels, 3, padding=1))

    def encodings(self, grid: Grid, device: torch.device | str, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """Every MS-PE tensor of this network on `grid`, in the order forward adds them (empty without
        MS-PE): compute once per render and pass to forward for every step."""
        stages = [s.pe for s in self.down] + [s.pe for s in self.up]
        return [pe(grid, torch.device(device), dtype) for pe in stages if pe is not None]

    def forward(self, x: torch.Tensor, t: torch.Tensor, grid: Grid | None = None,
                encodings: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """x [N, C, H, W], t [N] (0-based step indices) -> eps [N, C, H, W]."""
        if encodings is None:
            encodings = self.encodings(grid or Grid(x.shape[-2], x.shape[-1]), x.device, x.dtype)
        pes = iter(encodings)
        temb = self.temb(timestep_embedding(t, self.cfg.channels))  # [N, 4ch]
        h = self.conv_in(x)
        hs = [h]
        for stage in self.down:
            for block, attn in stage.blocks:
                h = attn(block(h, temb))
                hs.append(h)
            if stage.pe is not None:  # Choi App. C.2: after the residual blocks of each level
                h = h + _fit(next(pes), h)
                hs[-1] = h
            if stage.downsample is not None:
                h = stage.downsample(h)  # [N, C, ceil(H/2), ceil(W/2)]
                hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)
        for stage in self.up:
            for block, attn in stage.blocks:
                h = attn(block(torch.cat([h, hs.pop()], dim=1), temb))
            if stage.upsample is not None:
                h = stage.upsample(F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
                if stage.pe is not None:  # ... and after each upsampling
                    h = h + _fit(next(pes), h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _fit(pe: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """pe [1, C, h', w'] for features h [N, C, h, w]: the grid's lattice at a stride is ceil(H/stride),
    as is a stride-2 convolution's output, so the sizes agree (asserted)."""
    assert pe.shape[-2:] == h.shape[-2:], (tuple(pe.shape), tuple(h.shape))
    return pe


class DDPM(Generator):
    """A DDPM: x_T (its latent) -> x_0 by the reverse process with a U-Net on a `Grid`.

    Renders shifted grids (MS-PE only: a baseline U-Net has no coordinates to shift) and larger or
    non-square canvases; RenderOptions.steps / .sampler choose the sampler (defaults from the config).
    """

    family = "ddpm"
    capabilities = frozenset({"shift", "expand", "steps"})

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.unet = UNet(cfg)
        self.diffusion = GaussianDiffusion.linear(cfg.timesteps, cfg.beta_start, cfg.beta_end,
                                                  variance=cfg.variance, clip=cfg.clip)
        if cfg.positional_encoding == "none":
            self.capabilities = frozenset({"expand", "steps"})  # shifting a grid without coordinates changes nothing

    def latents(self, seeds: Sequence[int], grid: Grid | PointGrid | None = None) -> torch.Tensor:
        """x_T: one standard normal image per seed on the grid's lattice, [N, C, H, W]."""
        grid = grid or self.default_grid()
        if isinstance(grid, PointGrid):
            raise CapabilityError("a PointGrid needs a pixel-independent generator (cips); this is a ddpm model")
        return seed_normal(seeds, (self.cfg.img_channels, grid.height, grid.width))

    def check(self, options: RenderOptions, grid=None, model: str | None = None) -> None:
        super().check(options, grid, model)
        self.sampler_settings(options)  # --sampler and --steps refused before the first step

    def sampler_settings(self, options: RenderOptions) -> tuple[str, int]:
        """(sampler, steps) of a render: the options', else the config's defaults."""
        sampler = options.sampler or self.cfg.sampler
        if sampler not in SAMPLERS:
            raise CapabilityError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
        steps = options.steps or (self.cfg.ddim_steps if sampler == "ddim" else self.cfg.ddpm_steps)
        if not 1 <= steps <= self.cfg.timesteps:
            raise CapabilityError(f"--steps must be between 1 and the model's {self.cfg.timesteps} timesteps, "
                                  f"got {steps}")
        return sampler, steps

    def eps_fn(self, grid: Grid, device: torch.device, dtype: torch.dtype = torch.float32):
        """eps_theta(x, t) on `grid`, its encodings computed once."""
        encodings = self.unet.encodings(grid, device, dtype)
        return lambda x, t: self.unet(x, t, grid, encodings)

    @torch.no_grad()
    def render(self, latents: torch.Tensor, grid: Grid | PointGrid | None = None,
               options: RenderOptions = RenderOptions()) -> torch.Tensor:
        self.check(options, grid)
        grid = grid or self.default_grid()
        if tuple(latents.shape[-2:]) != grid.size:
            raise ValueError(f"latents of {tuple(latents.shape[-2:])} pixels for a {grid.height}x{grid.width} grid")
        sampler, steps = self.sampler_settings(options)
        stochastic = sampler == "ddpm" or self.cfg.eta > 0
        return self.diffusion.sample(self.eps_fn(grid, latents.device, latents.dtype), latents, steps=steps,
                                     sampler=sampler, eta=self.cfg.eta,
                                     generator=latent_generators(latents) if stochastic else None)

    def memory_estimate(self, batch: int, grid: Grid | PointGrid | None = None,
                        options: RenderOptions = RenderOptions()) -> int:
        grid = grid or self.default_grid()
        cfg = self.cfg
        skips, work, encodings, c_prev = cfg.channels, 0, 0, cfg.channels  # per output pixel, in floats
        for level, mult in enumerate(cfg.channel_mult):
            share, c = 1 / 4**level, cfg.channels * mult
            skips += share * c * (cfg.num_res_blocks + (level + 1 < cfg.levels))  # kept for the decoder
            work = max(work, share * (2 * (c + c_prev) + 4 * c))  # a decoder block: the concatenation, norms, convs
            encodings += 2 * share * c if cfg.positional_encoding == "sinusoid" else 0
            c_prev = c
        # the U-Net's skips and working set per image (each block's norms, activations and convolutions: about
        # twice the tensors counted above, measured), the sampler's images (x_t, eps, x_0, the mean), the encodings
        pixels = grid.height * grid.width
        return int(pixels * (4 * batch * (2.4 * (skips + work) + 4 * cfg.img_channels) + 4 * encodings + COORD_BYTES))

    def forward(self, latents: torch.Tensor, grid: Grid | None = None, **options) -> torch.Tensor:
        """`render(x_T, grid, RenderOptions(**options))`."""
        return self.render(latents, grid, RenderOptions(**options))
