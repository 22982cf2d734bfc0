"""Equivariance metrics of StyleGAN3 (Karras et al. 2021, Sec. 3 and App. E), for every
posgen generator through its grid.

A generator is equivariant to a transform T when rendering on the transformed grid T(g) gives
the reference image (rendered on g) transformed by T. For each batch one transform is drawn:
  eqt       translation t ~ U[-1/8, 1/8] of the canvas size per axis, rounded to whole pixels;
  eqt-frac  the same without rounding;
  eqr       rotation by an angle ~ U[-π, π] about the canvas centre.
The reference image is resampled at the source position of every output pixel with a
separable Lanczos (windowed-sinc, a = 3) interpolator, which is exact for whole-pixel
translations and band-limited otherwise; only pixels whose whole 6x6 footprint lies on the
canvas are compared (the valid region). The score is the PSNR in dB with I_max = 2 over the
valid pixels of all samples (inf when identical). Noise must be deterministic given the grid
(noise mode "const" or "off") so that it is the same field in both renders.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from tqdm import tqdm

from posgen.grid import Grid
from posgen.sampling import SampleFn

Transform = Literal["eqt", "eqt-frac", "eqr"]
LANCZOS_A = 3
I_MAX = 2.0


def lanczos(x: torch.Tensor, a: int = LANCZOS_A) -> torch.Tensor:
    """Lanczos kernel sinc(x) sinc(x / a) on |x| < a; exactly 1 at 0 and 0 at other integers."""
    out = torch.sinc(x) * torch.sinc(x / a)
    out = torch.where(x.abs() < a, out, torch.zeros_like(out))
    nearest = x.round()
    return torch.where(x == nearest, (nearest == 0).to(x.dtype), out)


def lanczos_sample(images: torch.Tensor, src_y: torch.Tensor, src_x: torch.Tensor,
                   a: int = LANCZOS_A) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample images [N, C, H, W] at fractional pixel positions src_y, src_x [h, w].

    Returns (values [N, C, h, w], valid [h, w] bool): valid where all 2a x 2a taps lie inside.
    Each output pixel's weights are normalised to sum to one.
    """
    n, c, h_in, w_in = images.shape
    x = images.double()
    base_y, base_x = src_y.floor().long(), src_x.floor().long()
    offsets = torch.arange(-a + 1, a + 1)
    ty = base_y[..., None] + offsets  # [h, w, 2a]
    tx = base_x[..., None] + offsets
    wy = lanczos(src_y[..., None].double() - ty.double(), a)
    wx = lanczos(src_x[..., None].double() - tx.double(), a)
    # a tap with zero weight (exact integer positions) may fall outside without harm
    valid = (((ty >= 0) & (ty < h_in)) | (wy == 0)).all(-1) & (((tx >= 0) & (tx < w_in)) | (wx == 0)).all(-1)
    weights = wy[..., :, None] * wx[..., None, :]  # [h, w, 2a, 2a]
    weights = weights / weights.sum(dim=(-2, -1), keepdim=True)
    iy = ty.clamp(0, h_in - 1)[..., :, None].expand_as(weights)
    ix = tx.clamp(0, w_in - 1)[..., None, :].expand_as(weights)
    flat = (iy * w_in + ix).flatten()  # [h*w*4a²]
    gathered = x.flatten(2)[:, :, flat].view(n, c, *weights.shape)  # [N, C, h, w, 2a, 2a]
    values = (gathered * weights).sum(dim=(-2, -1))
    return values.to(images.dtype), valid


def source_positions(reference: Grid, transformed: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel of `transformed` lies on the lattice of `reference`: (y, x) [h, w]."""
    m = torch.linalg.solve(reference.affine, transformed.affine)  # lattice -> reference lattice
    i, j = torch.meshgrid(torch.arange(transformed.height, dtype=torch.float64),
                          torch.arange(transformed.width, dtype=torch.float64), indexing="ij")
    src = torch.einsum("rk,khw->rhw", m[:2], torch.stack([j, i, torch.ones_like(i)]))
    return src[1], src[0]


def transform_grid(grid: Grid, kind: Transform, gen: torch.Generator, translate_max: float = 0.125) -> Grid:
    """The transformed grid for one batch, drawn as StyleGAN3 draws it."""
    if kind == "eqr":
        return grid.rotate((torch.rand((), generator=gen, dtype=torch.float64).item() * 2 - 1) * math.pi)
    t = (torch.rand(2, generator=gen, dtype=torch.float64) * 2 - 1) * translate_max
    dy, dx = t[0].item() * grid.height, t[1].item() * grid.width
    if kind == "eqt":
        dy, dx = round(dy), round(dx)
    return grid.shift(dy, dx)


def psnr(sq_error_sum: float, count: int) -> float:
    if count == 0:
        raise ValueError("no valid pixels to compare (transform moves everything off the canvas)")
    mse = sq_error_sum / count
    return math.inf if mse == 0 else 20 * math.log10(I_MAX) - 10 * math.log10(mse)


def equivariance(sample_fn: SampleFn, kind: Transform, *, grid: Grid, num_samples: int = 1024,
                 batch_size: int = 8, seed: int = 0, progress: bool = False) -> dict:
    """EQ-T, EQ-T (fractional) or EQ-R of `sample_fn` around `grid`, in dB."""
    if kind not in ("eqt", "eqt-frac", "eqr"):
        raise ValueError(f"unknown equivariance transform {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    base = Grid(grid.height, grid.width, grid.affine)  # no period: transforms are not circular
    err, count = 0.0, 0
    for b0 in tqdm(range(0, num_samples, batch_size), desc=kind, disable=not progress, leave=False):
        n = min(batch_size, num_samples - b0)
        moved = transform_grid(base, kind, gen)
        ref = sample_fn(n, seed + b0, base).double()
        out = sample_fn(n, seed + b0, moved).double()
        values, valid = lanczos_sample(ref, *source_positions(base, moved))
        diff = (out - values) * valid
        err += float(diff.pow(2).sum())
        count += int(valid.sum()) * n * ref.shape[1]
    return {kind: psnr(err, count), f"{kind}_samples": num_samples}
