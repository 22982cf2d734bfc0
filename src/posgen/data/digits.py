"""Biased digits: a spatially biased colour-digits set built from scikit-learn's embedded
handwritten digits, after Choi et al.'s colour-MNIST (App. C.1): every digit sits in the
top-left region of a black canvas, so a spatially biased generator learns "digits live
there" and an unbiased one can draw them anywhere.

The 8x8 digits (16 grey levels) are upsampled bicubically to the region size, given a
colour and pasted into the region. Deterministic per seed.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from posgen.errors import DataError

# Saturated colours (RGB 0-255) chosen so every digit is bright on the black background.
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64), (64, 220, 64), (80, 120, 255), (255, 220, 48), (240, 80, 240), (48, 230, 230),
)


@dataclass
class BiasedDigitsConfig:
    canvas: tuple[int, int] = (32, 32)           # (H, W) of every image
    region: tuple[int, int, int, int] = (0, 0, 16, 16)  # (top, left, height, width) where digits live
    colors: tuple[tuple[int, int, int], ...] | None = DEFAULT_COLORS  # None: random hue per digit
    jitter: int = 0                              # random offset of the digit inside the region, pixels
    seed: int = 0
    copies: int = 1                              # each digit repeated with other colours/offsets

    def validate(self) -> None:
        h, w = self.canvas
        top, left, rh, rw = self.region
        if h < 1 or w < 1:
            raise DataError(f"digits canvas must be positive, got {h}x{w}")
        if rh < 4 or rw < 4 or top < 0 or left < 0 or top + rh > h or left + rw > w:
            raise DataError(f"digits region {self.region} (top, left, height, width) must lie inside the {h}x{w} canvas")
        if self.jitter < 0 or self.jitter >= min(rh, rw):
            raise DataError(f"digits jitter must be in [0, {min(rh, rw)}), got {self.jitter}")


def _random_hue_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """n fully saturated, bright colours of uniformly random hue, RGB 0-255."""
    return np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in rng.uniform(0, 1, n)]) * 255


def make_biased_digits(cfg: BiasedDigitsConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (images uint8 [N, 3, H, W], labels int64 [N])."""
    from sklearn.datasets import load_digits

    cfg = cfg or BiasedDigitsConfig()
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    digits = load_digits()
    glyphs = np.repeat(digits.images.astype(np.float32) / 16.0, cfg.copies, axis=0)  # [N, 8, 8] in [0, 1]
    labels = np.repeat(digits.target.astype(np.int64), cfg.copies)
    n = len(glyphs)
    top, left, rh, rw = cfg.region
    gh, gw = rh - cfg.jitter, rw - cfg.jitter
    g = F.interpolate(torch.from_numpy(glyphs)[:, None], size=(gh, gw), mode="bicubic", align_corners=False)
    g = g.clamp(0, 1)[:, 0]  # [N, gh, gw]
    if cfg.colors is None:
        colors = _random_hue_colors(rng, n)
    else:
        palette = np.asarray(cfg.colors, dtype=np.float64)
        if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
            raise DataError(f"digits colors must be a list of RGB triples, got {cfg.colors!r}")
        colors = palette[rng.integers(0, len(palette), n)]
    oy = rng.integers(0, cfg.jitter + 1, n)
    ox = rng.integers(0, cfg.jitter + 1, n)
    images = torch.zeros(n, 3, *cfg.canvas)
    col = torch.from_numpy(colors).float()[:, :, None, None]  # [N, 3, 1, 1]
    for i in range(n):
        y0, x0 = top + int(oy[i]), left + int(ox[i])
        images[i, :, y0:y0 + gh, x0:x0 + gw] = g[i] * col[i]
    return images.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(labels)


class BiasedDigits(torch.utils.data.Dataset):
    """In-memory dataset of biased colour digits; items are uint8 [3, H, W]."""

    def __init__(self, cfg: BiasedDigitsConfig | None = None) -> None:
        self.cfg = cfg or BiasedDigitsConfig()
        self.images, self.labels = make_biased_digits(self.cfg)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]
