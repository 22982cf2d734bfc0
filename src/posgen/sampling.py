"""Rendering helpers: seeds -> latents -> images on any grid, and the `sample_fn` that
metrics take: sample_fn(batch_size, seed, grid) -> images in [-1, 1]."""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import torch

from posgen.grid import Grid, PointGrid
from posgen.models.base import Generator, RenderOptions, lattice_points, seed_normal

SampleFn = Callable[[int, int, Grid | None], torch.Tensor]
# Generators that render in chunks ("chunks" capability) render canvases larger than this in chunks of
# this many points, so that peak activation memory stays bounded whatever the canvas size (measured on
# CPU: about 0.75 GB per image of the batch at the paper's CIPS width 512, 65536 points).
DEFAULT_CHUNK_POINTS = 65536


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """One standard normal z per seed, independent of batch composition: [len(seeds), z_dim]."""
    return seed_normal(seeds, (z_dim,))


@torch.no_grad()
def render_seeds(G: Generator, seeds: list[int], grid: Grid | PointGrid | None = None, *, batch_size: int = 16,
                 progress: bool = False, max_memory: int | None = None, **options) -> torch.Tensor:
    """Images [len(seeds), C, H, W] in [-1, 1] for `seeds` on `grid` (default: training canvas).

    `options` are `RenderOptions` fields (truncation_psi, noise_mode, chunk_points, steps, sampler);
    each is checked against the generator's capabilities first. Generators that render in chunks
    do so by default (`DEFAULT_CHUNK_POINTS`). `progress`: a bar counting rendered pixels (chunk by
    chunk where the generator renders in chunks). The peak (`Generator.memory_estimate` of one batch,
    plus the images of all seeds) is checked against `max_memory` bytes (None: the machine's default,
    `posgen.memory.default_limit`) before anything is rendered: MemoryLimitError if beyond.
    """
    from posgen.memory import check_memory
    from posgen.tiling import tileable
    from tqdm import tqdm

    opts = RenderOptions(**options)
    G.check(opts, grid)
    if opts.chunk_points is None and "chunks" in G.capabilities:
        opts = dataclasses.replace(opts, chunk_points=DEFAULT_CHUNK_POINTS)
    device = next(G.parameters()).device
    grid = grid or G.default_grid()
    pixels = lattice_points(grid)
    batch_size = min(batch_size, len(seeds))
    images = 4 * 3 * pixels * len(seeds) * (1 if batch_size == len(seeds) else 2)  # the batches, then their concatenation
    size = f"{grid.height}x{grid.width}" if isinstance(grid, Grid) else f"{pixels} points"
    check_memory(G.memory_estimate(batch_size, grid, opts) + images, max_memory,
                 f"rendering {len(seeds)} image(s) of {size} in batches of {batch_size}",
                 "render a smaller canvas or fewer seeds" + (", or tile by tile" if tileable(G) else ""))
    latents = G.latents(seeds, grid).to(device)
    images = []
    with tqdm(total=len(seeds) * pixels, disable=not progress, unit="px", unit_scale=True, desc="rendering",
              dynamic_ncols=True) as bar:
        for i in range(0, len(seeds), batch_size):
            batch = latents[i:i + batch_size]
            n = len(batch)
            chunked = "chunks" in G.capabilities
            batch_opts = dataclasses.replace(opts, on_tile=lambda p, n=n: bar.update(p * n)) if chunked else opts
            images.append(G.render(batch, grid, batch_opts).cpu())
            if not chunked:
                bar.update(n * pixels)
    return images[0] if len(images) == 1 else torch.cat(images)  # one batch: no second copy of a huge canvas


def make_sample_fn(G: Generator, **options) -> SampleFn:
    """sample_fn(batch_size, seed, grid): the latents of seeds seed .. seed + batch_size - 1, rendered
    with `options` (RenderOptions fields)."""

    def sample_fn(batch_size: int, seed: int, grid: Grid | None = None) -> torch.Tensor:
        return render_seeds(G, list(range(seed, seed + batch_size)), grid, batch_size=batch_size, **options)

    return sample_fn


def seed_classes(G: Generator, label: int | None = None) -> Callable[[list[int]], torch.Tensor] | None:
    """For a class-conditional generator, seeds -> the class each draws (all `label` when one is asked
    for); None for other generators."""
    if "classes" not in G.capabilities:
        return None
    if label is not None:
        return lambda seeds: torch.full((len(seeds),), label, dtype=torch.long)
    return lambda seeds: G.mapping.classes(G.latents(seeds))


class Loaded(NamedTuple):
    G: Generator
    config: object  # posgen.config.RunConfig
    state: dict


def load(path: str, device: str = "cpu") -> Loaded:
    """Load the generator of a checkpoint file or run directory: `G, config, state = posgen.load(p)`."""
    from posgen.checkpoint import load_generator

    return Loaded(*load_generator(path, device))
