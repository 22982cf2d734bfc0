"""Images to PNG: tensors in [-1, 1] -> uint8 pictures and grids."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C] (C = 3, or grey as 3 channels)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.permute(0, 2, 3, 1).numpy()


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """One image [C, H, W] in [-1, 1]."""
    Image.fromarray(to_uint8(image[None])[0]).save(path)


def image_grid(images: torch.Tensor, cols: int, pad: int = 2, background: int = 40) -> np.ndarray:
    """Tile [N, C, H, W] images (all one size) into rows of `cols`, separated by `pad` pixels."""
    arr = to_uint8(images)
    n, h, w, c = arr.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), background, dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = arr[k]
    return out


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (plots are written as PNG, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_image_grid(images: torch.Tensor, path: str | Path, cols: int = 8) -> None:
    Image.fromarray(image_grid(images, cols)).save(path)
