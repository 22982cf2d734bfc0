"""Texture sticking (Karras et al. 2021, Fig. 1): do a generator's details move with its content?

The canvas pans slowly (a sub-pixel step per frame) and every frame is rendered. We show, per model:

- the first frame;
- the **screen average** of all frames: content that moves with the pan blurs into streaks, details
  stuck to screen coordinates (the canvas border, the pixel lattice) stay sharp in it;
- the **pixel trace** of the busiest row (most detail in the first frame): each frame's row stacked
  below the previous one. Content that
  moves draws slanted lines (slope = the pan speed); stuck texture draws vertical lines.

And one number, the **sticking ratio**: the high-frequency energy of the screen average over the mean
high-frequency energy of the frames (high frequencies: the image minus its 3x3 box blur). A generator
whose details move with the content averages them away (ratio well below 1, the faster the pan the
lower); one whose details stay put keeps them (ratio near 1). Only the pixels that stay inside the
canvas for the whole pan are counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from posgen.apps.video import VideoConfig, frame_grids, upscale_batch
from posgen.errors import UsageError
from posgen.grid import Grid
from posgen.models.base import Generator, RenderOptions, require


@dataclass
class StickingConfig:
    frames: int = 32
    pan: float = 8.0        # total horizontal motion in training pixels (sub-pixel per frame by default)
    upscale: int = 4        # figure pixels per rendered pixel (nearest)

    def validate(self) -> None:
        if self.frames < 2:
            raise UsageError(f"--frames must be at least 2, got {self.frames}")
        if not 0 < abs(self.pan) < 1e6:
            raise UsageError(f"--pan must be a non-zero number of pixels, got {self.pan}")
        if self.upscale < 1:
            raise UsageError(f"--upscale must be a positive whole number, got {self.upscale}")


def high_pass(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> the image minus its 3x3 box blur, on the interior [N, C, H-2, W-2]."""
    blur = F.avg_pool2d(images, 3, stride=1)
    return images[..., 1:-1, 1:-1] - blur


def sticking_ratio(frames: torch.Tensor, pan_pixels: float) -> float:
    """frames [T, C, H, W] of a horizontal pan -> HF energy of their mean / mean HF energy of each frame,
    over the columns that stay on the canvas for the whole pan."""
    inner = frames[..., :, : frames.shape[-1] - int(abs(pan_pixels) + 0.999)] if pan_pixels > 0 else \
        frames[..., :, int(abs(pan_pixels) + 0.999):]
    if inner.shape[-1] < 3:
        raise UsageError(f"--pan {pan_pixels:g} leaves no column on the canvas for the whole pan")
    average = high_pass(inner.mean(0, keepdim=True)).pow(2).mean()
    each = high_pass(inner).pow(2).mean()
    return float(average / each.clamp_min(1e-12))


def pan_frames(G: Generator, seed: int, base: Grid, cfg: StickingConfig, options: RenderOptions) -> torch.Tensor:
    """[T, C, H, W]: seed `seed` rendered on `base` panned by cfg.pan pixels (x) over cfg.frames frames."""
    video = VideoConfig(kind="pan", frames=cfg.frames, pan=(0.0, cfg.pan))
    z = G.latents([seed], base).to(next(G.parameters()).device)
    return torch.cat([G.render(z, grid, options).cpu() for grid in frame_grids(video, base, G.resolution)])


def trace(frames: torch.Tensor) -> torch.Tensor:
    """[T, C, H, W] -> [C, T, W]: the busiest row (most high-frequency energy in frame 0) of each frame,
    one frame per row."""
    energy = F.pad(high_pass(frames[:1]), (1, 1, 1, 1)).pow(2).sum(dim=(0, 1, 3))  # [H]
    return frames[:, :, int(energy.argmax())].permute(1, 0, 2)


@torch.no_grad()
def sticking_figure(models: Sequence[tuple[str, Generator]], seed: int, cfg: StickingConfig, out: str | Path,
                    canvas=None, options: dict | None = None) -> list[dict]:
    """Per model a row [first frame | screen average | pixel trace]; writes the PNG `out`.
    Returns [{"model", "sticking_ratio"}] in the order of `models`."""
    from posgen.viz import save_image

    cfg.validate()
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the figure is written as .png")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a .png file")
    opts = RenderOptions(**(options or {}))
    rows, results = [], []
    for name, G in models:
        require(G, "shift", "a texture-sticking pan", name)
        G.check(opts, None, name)
        base = G.default_grid()
        if canvas is not None:
            for capability, option in canvas.requested().items():
                require(G, capability, option, name)
            base = canvas.grid(base)
        frames = pan_frames(G, seed, base, cfg, opts)
        results.append({"model": name, "sticking_ratio": sticking_ratio(frames, cfg.pan)})
        panels = [frames[0], frames.mean(0), trace(frames)]
        height = max(p.shape[1] for p in panels)
        padded = [F.pad(p, (0, 2, 0, height - p.shape[1]), value=-1.0) for p in panels]
        rows.append(torch.cat(padded, dim=2))
    width = max(r.shape[2] for r in rows)
    figure = torch.cat([F.pad(r, (0, width - r.shape[2], 0, 2), value=-1.0) for r in rows], dim=1)
    save_image(upscale_batch(figure[None], cfg.upscale)[0], out)
    return results


__all__ = ["StickingConfig", "high_pass", "pan_frames", "sticking_figure", "sticking_ratio", "trace"]
