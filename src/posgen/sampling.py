"""Rendering helpers: seeds -> latents -> images on any grid, and the `sample_fn` that
metrics take: sample_fn(batch_size, seed, grid) -> images in [-1, 1]."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from posgen.grid import Grid
from posgen.models import AnyGenerator
from posgen.ops.noise import NoiseMode

SampleFn = Callable[[int, int, Grid | None], torch.Tensor]
# Pixel-independent generators render canvases larger than this in chunks of this many points, so
# that peak activation memory stays bounded whatever the canvas size (measured on CPU: about 0.75 GB
# per image of the batch at the paper's CIPS width 512, 65536 points).
DEFAULT_CHUNK_POINTS = 65536


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """One standard normal z per seed, independent of batch composition: [len(seeds), z_dim]."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def render_seeds(G: AnyGenerator, seeds: list[int], grid: Grid | None = None, *, truncation_psi: float = 1.0,
                 noise_mode: NoiseMode = "const", batch_size: int = 16, chunk_points: int | None = None,
                 progress: bool = False) -> torch.Tensor:
    """Images [len(seeds), C, H, W] in [-1, 1] for `seeds` on `grid` (default: training canvas).

    `chunk_points`: render at most that many points per pass (pixel-independent generators only;
    None: `DEFAULT_CHUNK_POINTS` for those, whole canvases otherwise). `progress`: a bar counting
    rendered pixels (chunk by chunk where the generator renders in chunks).
    """
    from tqdm import tqdm

    device = next(G.parameters()).device
    if chunk_points is None and G.pixel_independent:
        chunk_points = DEFAULT_CHUNK_POINTS
    grid = grid or G.default_grid()
    z = seed_latents(seeds, G.cfg.z_dim).to(device)
    images = []
    with tqdm(total=len(seeds) * grid.height * grid.width, disable=not progress, unit="px", unit_scale=True,
              desc="rendering", dynamic_ncols=True) as bar:
        for i in range(0, len(seeds), batch_size):
            n = len(z[i:i + batch_size])
            tiles = {"on_tile": lambda points, n=n: bar.update(points * n)} if G.pixel_independent else {}
            images.append(G(z[i:i + batch_size], grid, truncation_psi, noise_mode, chunk_points=chunk_points,
                            **tiles).cpu())
            if not G.pixel_independent:
                bar.update(n * grid.height * grid.width)
    return images[0] if len(images) == 1 else torch.cat(images)  # one batch: no second copy of a huge canvas


def make_sample_fn(G: AnyGenerator, *, truncation_psi: float = 1.0, noise_mode: NoiseMode = "const") -> SampleFn:
    """Batch `batch_size` of the latents drawn from `seed` (same seed + batch size -> same latents)."""

    def sample_fn(batch_size: int, seed: int, grid: Grid | None = None) -> torch.Tensor:
        return render_seeds(G, list(range(seed, seed + batch_size)), grid, truncation_psi=truncation_psi,
                            noise_mode=noise_mode, batch_size=batch_size)

    return sample_fn


class Loaded(NamedTuple):
    G: AnyGenerator
    config: object  # posgen.config.RunConfig
    state: dict


def load(path: str, device: str = "cpu") -> Loaded:
    """Load the generator of a checkpoint file or run directory: `G, config, state = posgen.load(p)`."""
    from posgen.checkpoint import load_generator

    return Loaded(*load_generator(path, device))
