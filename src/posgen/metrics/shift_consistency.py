"""Shift consistency (Choi et al. App. C.4, Fig. 2(d)): render the same latents on grids
shifted by s pixels, crop the digit patch at its shifted place, convert to grayscale, and
compare with the unshifted patch by  sim = sum min(A, B) / sum max(A, B)  (Eq. C, a
continuous relaxation of IoU). Fractional shifts are cropped with linear interpolation.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from tqdm import tqdm

from posgen.grid import Grid
from posgen.sampling import SampleFn

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, H, W] in [0, 1] (ITU-R 601 luma)."""
    x = (images.clamp(-1, 1) + 1) / 2
    if x.shape[1] == 1:
        return x[:, 0]
    return torch.einsum("nchw,c->nhw", x, _LUMA.to(x))


def patch_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. C per sample: [N, h, w] x [N, h, w] -> [N]."""
    return torch.minimum(a, b).sum(dim=(1, 2)) / torch.maximum(a, b).sum(dim=(1, 2)).clamp_min(1e-12)


def unshift(x: torch.Tensor, s: float, dim: int) -> torch.Tensor:
    """Roll content back by s pixels along `dim` with linear interpolation for the fraction."""
    k = math.floor(s)
    f = s - k
    out = torch.roll(x, -k, dims=dim)
    return out if f == 0 else (1 - f) * out + f * torch.roll(x, -(k + 1), dims=dim)


def shift_consistency(
    sample_fn: SampleFn,
    *,
    grid: Grid,
    region: tuple[int, int, int, int],
    max_shift: float = 16.0,
    step: float = 0.5,
    axes: tuple[str, ...] = ("x", "y"),
    num_samples: int = 64,
    batch_size: int = 32,
    seed: int = 0,
    roll: bool = True,
    plot: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Similarity curve over shifts 0, step, ..., max_shift along each axis, and its mean (s > 0).

    grid: the canvas the shifts start from (usually the training grid); region: (top, left,
    height, width) of the content patch on it at shift 0.
    roll: circular shifts as in Choi et al.; without it the patch must stay on the canvas.
    """
    top, left, rh, rw = region
    if step <= 0 or max_shift <= 0:
        raise ValueError("max_shift and step must be positive")
    canvas = grid.size
    if top < 0 or left < 0 or rh < 1 or rw < 1 or top + rh > canvas[0] or left + rw > canvas[1]:
        raise ValueError(f"region {tuple(region)} (top, left, height, width) must lie inside the {canvas[0]}x{canvas[1]} canvas")
    if not roll and (top + rh + max_shift > canvas[0] or left + rw + max_shift > canvas[1]):
        raise ValueError("without roll, region + max_shift must stay inside the canvas")
    shifts = [round(k * step, 6) for k in range(math.floor(max_shift / step + 1e-9) + 1)]
    base = Grid(grid.height, grid.width, grid.affine)
    # shifts are in output pixels; the grid moves in frame units (which differ on a zoomed grid)
    spacing = (base.extent()[0] / base.height, base.extent()[1] / base.width)
    curves: dict[str, list[float]] = {}
    for axis in axes:
        if axis not in ("x", "y"):
            raise ValueError(f"axes must be x and/or y, got {axis!r}")
        sums = torch.zeros(len(shifts))
        for b0 in tqdm(range(0, num_samples, batch_size), desc=f"shift-consistency {axis}", disable=not progress,
                       leave=False):
            n = min(batch_size, num_samples - b0)
            ref = None
            for i, s in enumerate(shifts):
                dy, dx = (s * spacing[0], 0.0) if axis == "y" else (0.0, s * spacing[1])
                grid = base.roll(dy, dx) if roll else base.shift(dy, dx)
                gray = grayscale(sample_fn(n, seed + b0, grid).float())
                gray = unshift(gray, s, dim=1 if axis == "y" else 2)
                patch = gray[:, top:top + rh, left:left + rw]
                if ref is None:
                    ref = patch
                sums[i] += patch_similarity(ref, patch).sum()
        curves[axis] = (sums / num_samples).tolist()
    shifted = [v for c in curves.values() for v in c[1:]]
    result = {
        "metric": "shift-consistency",
        "mean": float(sum(shifted) / len(shifted)),
        "shifts": shifts,
        "curves": curves,
        "num_samples": num_samples,
        "region": list(region),
        "canvas": list(canvas),
        "roll": roll,
    }
    if plot is not None:
        plot_curves(result, plot)
        result["plot"] = str(plot)
    return result


def plot_curves(result: dict, path: str | Path) -> None:
    from posgen.viz import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for axis, curve in result["curves"].items():
        ax.plot(result["shifts"], curve, marker=".", label=f"shift along {axis}")
    ax.set_xlabel("shift (pixels)")
    ax.set_ylabel("similarity  Σmin/Σmax")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"shift consistency, mean {result['mean']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
