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
    """One image [C, H, W] in [-1, 1], its folder made if missing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, cols)).save(path)


def save_panels(rows: dict[str, list[torch.Tensor]], columns: list[str], path: Path, cols: int | None = None,
                 zoom: int = 3) -> None:
    """One figure: a row per model, a column per condition, each cell a tile of that model's images
    at their true pixel size (shown `zoom` times enlarged)."""
    plt = pyplot()
    tiles = [[image_grid(imgs, cols=cols or len(imgs)) for imgs in row] for row in rows.values()]
    widths = [max(row[c].shape[1] for row in tiles) for c in range(len(columns))]
    heights = [max(t.shape[0] for t in row) for row in tiles]
    gap = 6
    canvas = np.full((sum(heights) + gap * (len(heights) - 1), sum(widths) + gap * (len(widths) - 1), 3), 255, np.uint8)
    y = 0
    for row, h in zip(tiles, heights):
        x = 0
        for tile, w in zip(row, widths):
            canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
            x += w + gap
        y += h + gap
    dpi = 100
    fig = plt.figure(figsize=(canvas.shape[1] * zoom / dpi + 1.4, canvas.shape[0] * zoom / dpi + 0.4), dpi=dpi)
    ax = fig.add_axes((1.4 / (canvas.shape[1] * zoom / dpi + 1.4), 0, 1 - 1.4 / (canvas.shape[1] * zoom / dpi + 1.4),
                       1 - 0.4 / (canvas.shape[0] * zoom / dpi + 0.4)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks(np.cumsum([0] + [h + gap for h in heights[:-1]]) + np.array(heights) / 2, list(rows), fontsize=8)
    ax.set_xticks(np.cumsum([0] + [w + gap for w in widths[:-1]]) + np.array(widths) / 2, columns, fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.savefig(path)
    plt.close(fig)
