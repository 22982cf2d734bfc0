"""Videos: latent interpolation and the animations only a grid-aware generator can make.

- "interp": a walk through the latents of several seeds (slerp or lerp, in z or in w), on any canvas;
- "pan":    the canvas slides by a (sub-pixel per frame) translation: an unbiased generator shows
            the same image moving, a biased one redraws it (the "texture sticking" comparison
            of StyleGAN3 when two models are shown side by side); on a cylindrical CIPS model a
            pan of one circumference is a panorama fly-through;
- "zoom":   the canvas zooms about its centre, from one zoom factor to another (geometrically);
- "rotate": the canvas turns about its centre.

Frames are rendered and written one at a time (`GifWriter` streams GIF frames to the file), so
memory stays bounded by one frame whatever the length. Each frame is a tile of every model
(rows) x every seed (columns). Grid animations are checked against each family's capabilities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from posgen.errors import DataError, UsageError
from posgen.grid import Grid
from posgen.models.base import Generator, RenderOptions, require

VideoKind = Literal["interp", "pan", "zoom", "rotate"]
KINDS = ("interp", "pan", "zoom", "rotate")


# ------------------------------------------------------------------------------ GIF, streamed

class GifWriter:
    """Writes an animated GIF frame by frame (bounded memory: Pillow's own multi-frame writer keeps
    every frame until the end). Each frame gets its own palette of `colors` (<= 256; median cut, no
    dithering) as a local colour table; fewer colours make smaller files. The file loops forever."""

    def __init__(self, path: str | Path, fps: float = 12, loop: int = 0, colors: int = 256) -> None:
        if not fps > 0:
            raise UsageError(f"--fps must be positive, got {fps}")
        if not 2 <= colors <= 256:
            raise UsageError(f"--colors must be 2-256, got {colors}")
        self.colors = colors
        self.path = Path(path)
        self.delay_ms = max(10, round(1000 / fps / 10) * 10)  # GIF delays are in 1/100 s
        self.loop = loop
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._file = None

    def __enter__(self) -> GifWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        return self

    def write(self, frame: torch.Tensor | np.ndarray) -> None:
        """One frame: a tensor [C, H, W] in [-1, 1] or a uint8 array [H, W, 3]."""
        from PIL import GifImagePlugin, Image

        arr = _to_rgb8(frame)
        h, w = arr.shape[:2]
        if self.size is None:
            self.size = (h, w)
            # header, logical screen (no global colour table), NETSCAPE2.0 loop extension
            self._file.write(b"GIF89a" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + b"\x00\x00\x00")
            self._file.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + self.loop.to_bytes(2, "little") + b"\x00")
        elif self.size != (h, w):
            raise ValueError(f"GIF frames must all be {self.size[0]}x{self.size[1]}, got {h}x{w}")
        image = Image.fromarray(arr, "RGB").quantize(self.colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for chunk in GifImagePlugin.getdata(image, duration=self.delay_ms, include_color_table=True):
            self._file.write(chunk)
        self.frames += 1

    def __exit__(self, *exc) -> None:
        self._file.write(b";")
        self._file.close()
        if exc[0] is not None or self.frames == 0:
            self.path.unlink(missing_ok=True)


def _to_rgb8(frame: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(frame, torch.Tensor):
        from posgen.viz import to_uint8

        return np.ascontiguousarray(to_uint8(frame[None])[0])
    return np.ascontiguousarray(frame, dtype=np.uint8)


def upscale(image: torch.Tensor, factor: int) -> torch.Tensor:
    """[C, H, W] -> [C, H*f, W*f], nearest neighbour (pixels stay visible)."""
    return image if factor == 1 else F.interpolate(image[None], scale_factor=factor, mode="nearest")[0]


# ------------------------------------------------------------------------------ latents

def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between a and b (per row, over all trailing dims), magnitude lerped."""
    fa, fb = a.flatten(1), b.flatten(1)
    na, nb = fa.norm(dim=1, keepdim=True), fb.norm(dim=1, keepdim=True)
    ua, ub = fa / na.clamp_min(1e-12), fb / nb.clamp_min(1e-12)
    omega = torch.acos((ua * ub).sum(dim=1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    u = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    near = (omega < 1e-4).expand_as(u)  # nearly parallel: lerp of directions is exact enough
    u = torch.where(near, (1 - t) * ua + t * ub, u)
    return (u * ((1 - t) * na + t * nb)).view_as(a)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return a + (b - a) * t


# ------------------------------------------------------------------------------ grids per frame

def centre(grid: Grid) -> tuple[float, float]:
    """(y, x) frame coordinates of the centre of `grid`'s lattice."""
    c = grid.affine @ torch.tensor([(grid.width - 1) / 2, (grid.height - 1) / 2, 1.0], dtype=torch.float64)
    return float(c[1]), float(c[0])


def zoom_about_centre(grid: Grid, factor: float) -> Grid:
    """Same lattice, `factor` times denser about its centre (factor < 1 zooms out)."""
    cx, cy = (grid.width - 1) / 2, (grid.height - 1) / 2
    s = 1 / factor
    m = torch.tensor([[s, 0, cx * (1 - s)], [0, s, cy * (1 - s)], [0, 0, 1]], dtype=torch.float64)
    return Grid(grid.height, grid.width, grid.affine @ m, grid.period)


MAX_FRAMES = 10_000   # a 14-minute GIF at 12 fps: anything longer is a typo
MAX_UPSCALE = 64      # frame pixels per rendered pixel
MAX_FPS = 100.0       # GIF frame delays are whole hundredths of a second


@dataclass
class VideoConfig:
    kind: VideoKind = "interp"
    frames: int = 60
    fps: float = 12
    space: Literal["auto", "z", "w"] = "auto"       # interp: w needs a mapping network; auto: w if there is one
    interpolation: Literal["slerp", "lerp"] = "slerp"
    pan: tuple[float, float] | None = None          # pan: total (dy, dx) in training pixels (default (0, resolution))
    zoom_range: tuple[float, float] = (1.0, 2.0)    # zoom: first and last zoom factor
    degrees: float = 360.0                          # rotate: total angle
    upscale: int = 4                                # frame pixels per rendered pixel (nearest)
    colors: int = 256                               # GIF palette size per frame
    loop: bool = True                               # interp: come back to the first seed

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown video kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if not 1 <= self.frames <= MAX_FRAMES:
            raise UsageError(f"--frames must be between 1 and {MAX_FRAMES}, got {self.frames}")
        if not 0 < self.fps <= MAX_FPS:
            raise UsageError(f"--fps must be in (0, {MAX_FPS:g}] (GIF delays are hundredths of a second), got {self.fps}")
        if self.space not in ("auto", "z", "w") or self.interpolation not in ("slerp", "lerp"):
            raise UsageError("--space is auto, z or w, --interpolation slerp or lerp")
        if min(self.zoom_range) <= 0 or not all(map(math.isfinite, self.zoom_range)):
            raise UsageError(f"--zoom-range must be two positive numbers, got {self.zoom_range}")
        if not 1 <= self.upscale <= MAX_UPSCALE:
            raise UsageError(f"--upscale must be a whole number from 1 to {MAX_UPSCALE}, got {self.upscale}")


def frame_grids(cfg: VideoConfig, base: Grid, resolution: int) -> Iterator[Grid]:
    """The grid of each frame of a grid animation, starting from `base`."""
    n = cfg.frames
    for f in range(n):
        t = f / max(1, n - 1) if cfg.kind == "zoom" else f / n  # pans and turns loop: frame n is frame 0
        if cfg.kind == "pan":
            dy, dx = cfg.pan if cfg.pan is not None else (0.0, float(resolution))
            yield base.shift(dy * t, dx * t)
        elif cfg.kind == "zoom":
            z0, z1 = cfg.zoom_range
            yield zoom_about_centre(base, z0 * (z1 / z0) ** t)
        elif cfg.kind == "rotate":
            yield base.rotate(math.radians(cfg.degrees * t), center=centre(base))
        else:
            yield base


def check_video(G: Generator, cfg: VideoConfig, model: str | None = None) -> None:
    """Refuse, in one line, an animation the family cannot render."""
    needs = {"pan": ["shift"], "zoom": ["zoom"], "rotate": ["rotate"], "interp": []}[cfg.kind]
    for capability in needs:
        require(G, capability, f"a {cfg.kind} video", model)
    if cfg.kind == "interp" and cfg.space == "w":
        require(G, "truncation", "--space w", model)


def frame_latents(G: Generator, seeds: Sequence[int], cfg: VideoConfig, grid: Grid) -> Iterator[tuple[str, torch.Tensor]]:
    """(kind, latents) per frame of an interpolation: kind "ws" [1, num_ws, w_dim] or "z" (the family's latent)."""
    device = next(G.parameters()).device
    z = G.latents(list(seeds), grid).to(device)  # [K, ...]
    space = cfg.space if cfg.space != "auto" else ("w" if "truncation" in G.capabilities else "z")
    keys = G.mapping(z) if space == "w" else z
    stops = list(range(len(seeds))) + ([0] if cfg.loop and len(seeds) > 1 else [])
    segments = max(1, len(stops) - 1)
    mix = slerp if cfg.interpolation == "slerp" else lerp
    for f in range(cfg.frames):
        u = f / cfg.frames * segments if cfg.loop else f / max(1, cfg.frames - 1) * segments
        k = min(int(u), segments - 1)
        t = u - k
        a, b = keys[stops[k]][None], keys[stops[min(k + 1, len(stops) - 1)]][None]
        v = mix(a, b, t)
        yield ("ws", v[:, None].expand(-1, G.num_ws, -1)) if space == "w" else ("z", v)


@torch.no_grad()
def render_video(models: Sequence[tuple[str, Generator]], seeds: Sequence[int], cfg: VideoConfig, out: str | Path,
                 canvas=None, options: dict | None = None, progress: bool = False) -> dict:
    """Render the animation `cfg` of `seeds` for each model (rows) and stream it to the GIF `out`.

    `canvas`: a `posgen.grid.Canvas` for the base grid of every model (default the training canvas).
    `options`: `RenderOptions` fields. Returns {"frames", "height", "width", "path"}.
    """
    from tqdm import tqdm

    from posgen.viz import image_grid

    cfg.validate()
    if not seeds:
        raise UsageError("--seeds must name at least one seed")
    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise UsageError(f"--out {out}: videos are written as .gif")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a .gif file")
    opts = RenderOptions(**(options or {}))
    bases = []
    for name, G in models:
        check_video(G, cfg, name)
        G.check(opts, None, name)
        base = G.default_grid()
        if canvas is not None:
            for capability, option in canvas.requested().items():
                require(G, capability, option, name)
            base = canvas.grid(base)
        bases.append(base)
    sizes = {b.size for b in bases}
    if len(sizes) > 1:
        raise UsageError(f"side-by-side models must render the same canvas size; got {sorted(sizes)}")

    def frames_of(i: int) -> Iterator[torch.Tensor]:
        name, G = models[i]
        base = bases[i]
        device = next(G.parameters()).device
        if cfg.kind == "interp":
            for kind, lat in frame_latents(G, seeds, cfg, base):
                if kind == "ws":
                    yield G.synthesize(lat, base, opts).cpu()
                else:
                    yield G.render(lat, base, opts).cpu()
            return
        z = G.latents(list(seeds), base).to(device)
        for grid in frame_grids(cfg, base, G.resolution):
            yield G.render(z, grid, opts).cpu()

    streams = [frames_of(i) for i in range(len(models))]
    cols = 1 if cfg.kind == "interp" else len(seeds)
    with GifWriter(out, fps=cfg.fps, colors=cfg.colors) as gif, tqdm(total=cfg.frames, disable=not progress, desc="frames",
                                                  unit="frame", dynamic_ncols=True) as bar:
        for _ in range(cfg.frames):
            rows = [next(s) for s in streams]  # each [K, C, H, W]
            tiles = torch.cat([upscale_batch(r, cfg.upscale) for r in rows])
            gif.write(image_grid(tiles, cols=cols))
            bar.update(1)
    return {"frames": gif.frames, "height": gif.size[0], "width": gif.size[1], "path": str(out)}


def upscale_batch(images: torch.Tensor, factor: int) -> torch.Tensor:
    return images if factor == 1 else F.interpolate(images, scale_factor=factor, mode="nearest")


def read_gif(path: str | Path) -> tuple[int, tuple[int, int]]:
    """(frame count, (H, W)) of a GIF file; DataError if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.n_frames, (im.height, im.width)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None


__all__ = ["GifWriter", "KINDS", "VideoConfig", "check_video", "frame_grids", "lerp", "read_gif", "render_video",
           "slerp", "upscale", "zoom_about_centre"]
