"""Per-pixel noise inputs (StyleGAN2), in three modes:

- "random": fresh N(0, 1) per sample and call;
- "const":  a fixed N(0, 1) field over the infinite integer lattice of each scale, looked up
            at the (rounded) scale coordinates, so it moves with the content when the grid
            shifts and exists on any canvas (no fixed-size buffer);
- "off":    zeros.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

NoiseMode = Literal["random", "const", "off"]
NOISE_MODES = ("random", "const", "off")

_M1, _M2, _M3 = 0x27D4EB2D, 0x165667B1, 0x61C88647
_MASK = (1 << 31) - 1


def _hash_uniform(ix: torch.Tensor, iy: torch.Tensor, seed: int) -> torch.Tensor:
    """Integer lattice points -> uniform (0, 1), deterministic (a small integer mixing hash)."""
    h = (ix * _M1 + iy * _M2 + seed * _M3) & _MASK
    for _ in range(3):
        h = ((h ^ (h >> 15)) * _M1) & _MASK
        h = ((h ^ (h >> 13)) * _M2) & _MASK
    return (h.double() + 0.5) / (_MASK + 1)


def lattice_noise(coords: torch.Tensor, seed: int) -> torch.Tensor:
    """Position-aligned standard normal noise at coords [2, h, w] -> [1, 1, h, w] (Box-Muller)."""
    ix, iy = torch.round(coords[0].double()).long(), torch.round(coords[1].double()).long()
    u1 = _hash_uniform(ix, iy, 2 * seed)
    u2 = _hash_uniform(ix, iy, 2 * seed + 1)
    z = torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
    return z.to(coords.dtype)[None, None]


class NoiseInput(nn.Module):
    """Adds strength * noise; `seed` distinguishes the const field of each layer."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed
        self.strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor, coords: torch.Tensor, mode: NoiseMode) -> torch.Tensor:
        if mode == "off":
            return x
        if mode == "random":
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        elif mode == "const":
            noise = lattice_noise(coords, self.seed).to(x)
        else:
            raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
        return x + noise * self.strength
