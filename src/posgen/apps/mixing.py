"""Layer-wise style mixing (Karras et al., StyleGAN Sec. 3.1; used by Xu et al. and CIPS): each
cell of the grid takes the styles of its row's seed everywhere except at the ws indices `layers`,
where it takes its column's seed. Coarse layers carry layout and shape, fine ones colour.

Families without per-layer styles (no "mixing" capability) are refused in one line.
"""
from __future__ import annotations

from typing import Sequence

import torch

from posgen.errors import UsageError
from posgen.grid import Grid
from posgen.models.base import MappedGenerator, RenderOptions, require


@torch.no_grad()
def style_mix(G: MappedGenerator, row_seeds: Sequence[int], col_seeds: Sequence[int], layers: Sequence[int],
              grid: Grid | None = None, options: RenderOptions | None = None, model: str | None = None) -> torch.Tensor:
    """Images [(R + 1) * (C + 1), C, H, W] laid out row-major for a (R + 1) x (C + 1) figure: the first row
    is a blank cell then the column seeds, each further row its row seed then the mixes."""
    require(G, "mixing", "style mixing", model)
    if not row_seeds or not col_seeds:
        raise UsageError("style mixing needs at least one row seed and one column seed")
    bad = [i for i in layers if not 0 <= i < G.num_ws]
    if bad or not layers:
        raise UsageError(f"--layers must name ws indices in 0-{G.num_ws - 1}, got {list(layers) or 'none'}")
    opts = options or RenderOptions()
    G.check(opts, grid, model)
    grid = grid or G.default_grid()
    device = next(G.parameters()).device
    seeds = list(row_seeds) + list(col_seeds)
    w = G.mapping(G.latents(seeds, grid).to(device), opts.truncation_psi)  # [R + C, w_dim]
    ws = w[:, None].expand(-1, G.num_ws, -1)
    rows, cols = ws[:len(row_seeds)], ws[len(row_seeds):]
    mixed = rows[:, None].repeat(1, len(col_seeds), 1, 1)  # [R, C, num_ws, w_dim]
    idx = torch.tensor(sorted(set(layers)), device=device)
    mixed[:, :, idx] = cols[None, :, idx]
    render_opts = RenderOptions(noise_mode=opts.noise_mode, chunk_points=opts.chunk_points)
    plain = G.synthesize(ws, grid, render_opts)  # [R + C, C, H, W]
    mixes = G.synthesize(mixed.flatten(0, 1), grid, render_opts)  # [R * C, C, H, W]
    r, c = len(row_seeds), len(col_seeds)
    blank = torch.full_like(plain[:1], -1.0)
    out = [blank, plain[r:]]
    for i in range(r):
        out += [plain[i:i + 1], mixes[i * c:(i + 1) * c]]
    return torch.cat(out)


__all__ = ["style_mix"]
