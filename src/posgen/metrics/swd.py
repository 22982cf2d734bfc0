"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al., PGGAN Sec. 5;
the "SWD" columns of Xu et al. Tables 2-5).

Every image is decomposed into a Laplacian pyramid (5-tap binomial filter, mirrored borders)
from full resolution down to 16x16; from each level `patches_per_image` random 7x7 patches
(the descriptors, 7·7·C values) are drawn. For each level the descriptors of a set are
normalised per channel by that set's mean and standard deviation, and the distance between
the real and generated sets is the sliced Wasserstein distance: project both onto random
unit directions, sort, take the mean absolute difference; averaged over `repeats` rounds of
`directions` directions. Results are reported per level and averaged, x 10^3 as in the
papers.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 7
MIN_RESOLUTION = 16
SWD_REPEATS = 4  # random projection sets averaged per pyramid level
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = (_BINOMIAL[:, None] * _BINOMIAL[None]).to(x).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[:, :, ::2, ::2]


def _pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    up = torch.zeros(*x.shape[:2], size[0], size[1], dtype=x.dtype, device=x.device)
    up[:, :, ::2, ::2] = x
    return _blur(up) * 4


def laplacian_pyramid(images: torch.Tensor) -> list[torch.Tensor]:
    """[N, C, H, W] -> band-pass levels from full size down, the last being the low-pass residual
    at the first size with min(H, W) <= 16."""
    levels = []
    x = images
    while min(x.shape[-2:]) > MIN_RESOLUTION:
        low = _pyr_down(x)
        levels.append(x - _pyr_up(low, x.shape[-2:]))
        x = low
    levels.append(x)
    return levels


def swd_descriptors(images: torch.Tensor, *, patches_per_image: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Random 7x7 patches of every pyramid level: one float16 array [N * patches_per_image, C, 7, 7]
    per level. `seed` makes the patch positions reproducible for a batch."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for level in laplacian_pyramid(images.float()):
        n, c, h, w = level.shape
        if h < PATCH or w < PATCH:
            raise ValueError(f"SWD needs images of at least {PATCH}x{PATCH} per level, got {h}x{w}")
        ys = torch.randint(0, h - PATCH + 1, (n, patches_per_image), generator=gen)
        xs = torch.randint(0, w - PATCH + 1, (n, patches_per_image), generator=gen)
        patches = level.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # [N, C, h-6, w-6, 7, 7]
        idx = torch.arange(n)[:, None]
        picked = patches.permute(0, 2, 3, 1, 4, 5)[idx, ys, xs]  # [N, P, C, 7, 7]
        out.append(picked.reshape(-1, c, PATCH, PATCH).cpu().numpy().astype(np.float16))
    return out


def _normalise(desc: np.ndarray) -> torch.Tensor:
    d = torch.from_numpy(desc.astype(np.float32))
    mean = d.mean(dim=(0, 2, 3), keepdim=True)
    std = d.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    return ((d - mean) / std).flatten(1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, *, directions: int = 128, repeats: int = SWD_REPEATS,
                       seed: int = 0, bar=None) -> float:
    """SWD between two descriptor sets [N, D] of equal size (`bar`: a tqdm bar advanced per repeat)."""
    if len(a) != len(b):
        raise ValueError(f"descriptor sets must have equal size, got {len(a)} and {len(b)}")
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(repeats):
        dirs = torch.randn(a.shape[1], directions, generator=gen)
        dirs /= dirs.norm(dim=0, keepdim=True)
        pa, _ = torch.sort(a @ dirs, dim=0)
        pb, _ = torch.sort(b @ dirs, dim=0)
        total += float((pa - pb).abs().mean())
        if bar is not None:
            bar.update(1)
    return total / repeats


def swd(fake: list[np.ndarray], real: list[np.ndarray], *, seed: int = 0, progress: bool = False) -> dict:
    """SWD x 10^3 per pyramid level (finest first) and their average, from `swd_descriptors` of
    the generated and real sets; the larger set is subsampled to the smaller one's size. With
    `progress`, a bar over the projections (minutes for 10,000 images on a CPU)."""
    from tqdm import tqdm

    if len(fake) != len(real):
        raise ValueError("generated and real images have different pyramid depths (different sizes?)")
    rng = np.random.default_rng(seed)
    levels = []
    with tqdm(total=SWD_REPEATS * len(fake), desc="swd projections", disable=not progress, leave=False) as bar:
        for f, r in zip(fake, real):
            m = min(len(f), len(r))
            f = f[np.sort(rng.choice(len(f), m, replace=False))] if len(f) > m else f
            r = r[np.sort(rng.choice(len(r), m, replace=False))] if len(r) > m else r
            levels.append(1e3 * sliced_wasserstein(_normalise(f), _normalise(r), seed=seed, bar=bar))
    return {"swd": float(np.mean(levels)), "swd_levels": levels, "swd_descriptors": m}
