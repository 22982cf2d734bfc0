"""Rendering helpers: seeds -> latents -> images on any grid, and the `sample_fn` that
metrics take: sample_fn(batch_size, seed, grid) -> images in [-1, 1]."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from posgen.grid import Grid
from posgen.models import Generator
from posgen.ops.noise import NoiseMode

SampleFn = Callable[[int, int, Grid | None], torch.Tensor]


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """One standard normal z per seed, independent of batch composition: [len(seeds), z_dim]."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def render_seeds(G: Generator, seeds: list[int], grid: Grid | None = None, *, truncation_psi: float = 1.0,
                 noise_mode: NoiseMode = "const", batch_size: int = 16) -> torch.Tensor:
    """Images [len(seeds), C, H, W] in [-1, 1] for `seeds` on `grid` (default: training canvas)."""
    device = next(G.parameters()).device
    z = seed_latents(seeds, G.cfg.z_dim).to(device)
    return torch.cat([G(z[i:i + batch_size], grid, truncation_psi, noise_mode).cpu()
                      for i in range(0, len(seeds), batch_size)])


def make_sample_fn(G: Generator, *, truncation_psi: float = 1.0, noise_mode: NoiseMode = "const") -> SampleFn:
    """Batch `batch_size` of the latents drawn from `seed` (same seed + batch size -> same latents)."""

    def sample_fn(batch_size: int, seed: int, grid: Grid | None = None) -> torch.Tensor:
        return render_seeds(G, list(range(seed, seed + batch_size)), grid, truncation_psi=truncation_psi,
                            noise_mode=noise_mode, batch_size=batch_size)

    return sample_fn


class Loaded(NamedTuple):
    G: Generator
    config: object  # posgen.config.RunConfig
    state: dict


def load(path: str, device: str = "cpu") -> Loaded:
    """Load the generator of a checkpoint file or run directory: `G, config, state = posgen.load(p)`."""
    from posgen.checkpoint import load_generator

    return Loaded(*load_generator(path, device))
