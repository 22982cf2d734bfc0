"""Rendering that only pixel-independent generators (CIPS) allow: any point set, any style per pixel.

- Foveated synthesis (Anokhin et al. Fig. 8): render only a subset of a lattice's pixels, drawn
  more densely near a focus (a 2-D Gaussian), and fill the rest by interpolation.
- Per-pixel style blending (Fig. 11c): every pixel gets its own w = (1 - m) w_a + m w_b from a
  mask m. Pixels that share a mask value share their weights, so the lattice is rendered as one
  point set per mask level (`levels` of them): the exact per-pixel result for the quantised mask,
  at the cost of one render.
"""
from __future__ import annotations

import numpy as np
import torch

from posgen.grid import Grid, PointGrid
from posgen.models.base import require


def gaussian_pixels(grid: Grid, fraction: float, *, sigma: float | None = None,
                    center: tuple[float, float] | None = None, seed: int = 0) -> torch.Tensor:
    """round(fraction * H * W) distinct flat lattice indices of `grid`, drawn without replacement
    with probability proportional to a 2-D Gaussian around `center` (lattice (y, x), default the
    middle) of std `sigma` lattice pixels (default a quarter of the shorter side). Sorted."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h, w = grid.size
    count = max(1, round(fraction * h * w))
    if count == h * w:
        return torch.arange(h * w)
    sigma = sigma or min(h, w) / 4
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    cy, cx = center if center is not None else ((h - 1) / 2, (w - 1) / 2)
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    weight = torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)).flatten()
    weight = weight + weight.max() * 1e-12  # every pixel stays drawable, so any count up to H*W works
    picked = torch.multinomial(weight, count, replacement=False, generator=torch.Generator().manual_seed(seed))
    return picked.sort().values


def fill_from_points(values: torch.Tensor, index: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """values [N, C, P] known at flat lattice indices `index` of an (H, W) lattice -> [N, C, H, W]:
    known pixels kept exactly, the others interpolated linearly over a Delaunay triangulation of the
    known ones (nearest known pixel outside their convex hull)."""
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    h, w = size
    n, c, p = values.shape
    if index.shape != (p,):
        raise ValueError(f"index must be [{p}] (one per value), got {tuple(index.shape)}")
    out = torch.empty(n, c, h * w, dtype=values.dtype)
    out[:, :, index] = values.cpu()
    missing = torch.ones(h * w, dtype=torch.bool)
    missing[index] = False
    if not missing.any():
        return out.view(n, c, h, w)
    known_yx = np.stack(np.divmod(index.numpy(), w), axis=1).astype(np.float64)  # [P, 2]
    query = np.stack(np.divmod(np.flatnonzero(missing.numpy()), w), axis=1).astype(np.float64)
    table = values.detach().cpu().double().permute(2, 0, 1).reshape(p, n * c).numpy()  # [P, N*C]
    if p >= 3 and np.linalg.matrix_rank(known_yx - known_yx.mean(0)) == 2:
        filled = LinearNDInterpolator(known_yx, table)(query)  # NaN outside the hull
    else:
        filled = np.full((len(query), n * c), np.nan)
    outside = np.isnan(filled).any(axis=1)
    if outside.any():
        filled[outside] = NearestNDInterpolator(known_yx, table)(query[outside])
    out[:, :, missing] = torch.from_numpy(filled).to(values.dtype).T.reshape(n, c, -1)
    return out.view(n, c, h, w)


@torch.no_grad()
def render_foveated(G, ws: torch.Tensor, grid: Grid, fraction: float, *, sigma: float | None = None,
                    seed: int = 0, chunk_points: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render a Gaussian-foveated `fraction` of `grid`'s pixels and interpolate the rest.

    Returns (images [N, C, H, W], index of the rendered pixels [P]).
    """
    require(G, "points", "foveated rendering")
    index = gaussian_pixels(grid, fraction, sigma=sigma, seed=seed)
    values = G.synthesis(ws, PointGrid.from_grid(grid, index), chunk_points=chunk_points)  # [N, C, P]
    return fill_from_points(values, index, grid.size), index


@torch.no_grad()
def render_style_blend(G, ws_a: torch.Tensor, ws_b: torch.Tensor, mask: torch.Tensor, grid: Grid, *,
                       levels: int = 256, chunk_points: int | None = None) -> torch.Tensor:
    """Per-pixel style: pixel p renders with ws = (1 - m_p) ws_a + m_p ws_b, m = `mask` [H, W] in [0, 1]
    quantised to `levels` values (CIPS Fig. 11c). ws_a, ws_b [N, num_ws, w_dim] -> [N, C, H, W]."""
    require(G, "points", "per-pixel style blending")
    h, w = grid.size
    if tuple(mask.shape) != (h, w):
        raise ValueError(f"mask must be [H, W] = [{h}, {w}] like the grid, got {tuple(mask.shape)}")
    if ws_a.shape != ws_b.shape:
        raise ValueError(f"ws_a and ws_b must have one shape, got {tuple(ws_a.shape)} and {tuple(ws_b.shape)}")
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    m = mask.detach().double().clamp(0, 1).flatten()
    level = torch.round(m * (levels - 1)).long()  # [H*W]
    points = PointGrid.from_grid(grid).points  # [H*W, 2], computed once for every level
    out = ws_a.new_empty(ws_a.shape[0], G.cfg.img_channels, h * w)
    for k in torch.unique(level).tolist():
        where = (level == k).nonzero().squeeze(1)
        t = k / (levels - 1)
        ws = torch.lerp(ws_a, ws_b, t)
        out[:, :, where.to(out.device)] = G.synthesis(ws, PointGrid(points[where]), chunk_points=chunk_points)
    return out.view(-1, G.cfg.img_channels, h, w)
