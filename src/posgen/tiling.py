"""Exact tiled rendering streamed into a PNG: canvases of any size in bounded memory.

A padding-free convolutional generator computes every output pixel from valid convolutions of
the coordinates (encodings, position-aligned noise) in a finite neighbourhood only, and it widens
each scale's lattice by the margins those convolutions eat. So rendering a window of the canvas
(`Grid.crop`) computes its own halo: when the window's origin is a multiple of the coarsest stride,
every scale's lattice of the tile lies on the whole canvas's lattice, the tile sees the same
coordinates and noise, and its pixels equal the one-shot render's to float rounding, bit for bit where
the CPU's kernels sum a tile in the same order as the whole canvas (tests/test_tiling.py, README).
Pixel-independent generators (CIPS) tile at any origin. `Generator.tiling` says which families
can, and why the others cannot (zero padding: a pixel depends on where the canvas border is). Tiles are
also kept large enough (`Generator.tiling`'s minimum) that every convolution runs on the algorithm it runs
on for the whole canvas (ATen switches algorithms by input size, and the two round differently): a
last row or column of tiles narrower than that is rendered from further back and cropped.

`render_png` renders one latent tile by tile, a band of tiles at a time, and streams the rows into
`PNGWriter`, so neither the activations of the whole canvas nor its float (or uint8) image are ever
in memory: the peak is one tile's render plus one band of uint8 rows.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import torch

from posgen.errors import CapabilityError
from posgen.files import atomic_write
from posgen.grid import Grid
from posgen.memory import check_memory
from posgen.models.base import Generator, RenderOptions
from posgen.viz import to_uint8

TILE_MEMORY = 256 * 2**20  # default peak of one tile's render: large tiles amortise the halo, small ones bound memory
_IDAT_BYTES = 1 << 20      # compressed bytes per IDAT chunk
BAND_BYTES = 2 * 3         # per pixel of a row of tiles: its uint8 rows and their filtered copy in the PNG writer


class PNGWriter:
    """A streaming 8-bit RGB PNG encoder: rows go in top to bottom, compressed as they come (zlib),
    each row with the "Up" filter (its difference to the row above); only the last row is kept."""

    def __init__(self, file: BinaryIO, height: int, width: int, level: int = 6) -> None:
        self.file, self.height, self.width = file, height, width
        self.rows = 0
        self.previous = np.zeros((width * 3,), np.uint8)
        self.compressor = zlib.compressobj(level)
        self.pending = bytearray()
        file.write(b"\x89PNG\r\n\x1a\n")
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))  # 8 bits, RGB, no interlace

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self.file.write(struct.pack(">I", len(data)) + kind + data)
        self.file.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

    def _flush(self, final: bool = False) -> None:
        while len(self.pending) >= _IDAT_BYTES or (final and self.pending):
            self._chunk(b"IDAT", bytes(self.pending[:_IDAT_BYTES]))
            del self.pending[:_IDAT_BYTES]

    def write(self, rows: np.ndarray) -> None:
        """rows: uint8 [h, width, 3], the next h rows of the image."""
        if rows.dtype != np.uint8 or rows.ndim != 3 or rows.shape[1:] != (self.width, 3):
            raise ValueError(f"rows must be uint8 [h, {self.width}, 3], got {rows.dtype} {rows.shape}")
        if self.rows + len(rows) > self.height:
            raise ValueError(f"{self.rows + len(rows)} rows written to a PNG of height {self.height}")
        flat = rows.reshape(len(rows), -1)
        up = np.empty((len(rows), flat.shape[1] + 1), np.uint8)
        up[:, 0] = 2  # filter type Up: Raw(x) - Prior(x) mod 256
        np.subtract(flat[0], self.previous, out=up[0, 1:])
        np.subtract(flat[1:], flat[:-1], out=up[1:, 1:])
        self.pending += self.compressor.compress(up.tobytes())
        self._flush()
        self.previous = flat[-1].copy()
        self.rows += len(rows)

    def close(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"PNG of height {self.height} closed after {self.rows} rows")
        self.pending += self.compressor.flush()
        self._flush(final=True)
        self._chunk(b"IEND", b"")


def tileable(G: Generator) -> bool:
    """Whether G renders exactly tile by tile (`Generator.tiling`)."""
    try:
        G.tiling()
    except CapabilityError:
        return False
    return True


def tile_memory(G: Generator, grid: Grid, options: RenderOptions, side: int) -> int:
    """Peak bytes of rendering `grid` in side x side tiles: one tile's render and one band of uint8 rows
    (and its filtered copy in the PNG writer)."""
    th, tw = min(side, grid.height), min(side, grid.width)
    return G.memory_estimate(1, grid.crop(0, 0, th, tw), options) + BAND_BYTES * th * grid.width


def tile_side(G: Generator, grid: Grid, options: RenderOptions, target: int = TILE_MEMORY) -> int:
    """The largest square tile side (a multiple of the generator's tile stride, at least its minimum tile,
    at most the canvas's longer side) that `tile_memory` puts within `target` bytes."""
    stride, minimum = G.tiling()
    lo, hi = math.ceil(minimum / stride), max(math.ceil(minimum / stride), math.ceil(max(grid.size) / stride))
    while lo < hi:  # in strides; the memory grows with the side
        mid = (lo + hi + 1) // 2
        if tile_memory(G, grid, options, mid * stride) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo * stride


def tile_spans(length: int, tile: int, stride: int, minimum: int) -> list[tuple[int, int, int]]:
    """(start, rendered from, rendered length) of the tiles along one side of `length` pixels: tiles of
    `tile` from multiples of it, the last one (when shorter than `minimum`) rendered from the last multiple
    of `stride` that gives it `minimum` pixels (or from 0) and cropped to its part."""
    spans = []
    for start in range(0, length, tile):
        origin = start
        if length - start < minimum:
            origin = max(0, (length - minimum) // stride * stride)
        spans.append((start, origin, min(length, start + tile) - origin))
    return spans


@dataclass(frozen=True)
class TilePlan:
    """How a grid is cut: tiles of `size` (height, width), and along each axis the tiles' (start, rendered
    from, rendered length) (`tile_spans`)."""

    size: tuple[int, int]
    rows: list[tuple[int, int, int]]
    cols: list[tuple[int, int, int]]


def plan_tiles(G: Generator, grid: Grid, options: RenderOptions = RenderOptions(), *, tile: int | None = None,
               limit: int | None = None, model: str | None = None) -> TilePlan:
    """Check that G renders `grid` exactly tile by tile with `options`, and cut it.

    `tile`: the side of the square tiles (at least the generator's minimum, rounded down to a multiple of
    its stride: `G.tiling()`); default the largest within `TILE_MEMORY` and `limit`. The peak (one tile
    and one band of rows) is checked against `limit` (None: the machine's default) before anything is
    rendered. Raises CapabilityError (one line, naming `model`) for generators that cannot be tiled exactly.
    """
    who = model or f"this {G.family} model"
    try:
        stride, minimum = G.tiling()
    except CapabilityError as e:
        raise CapabilityError(f"{who} cannot be rendered tile by tile exactly: {e}") from None
    if options.noise_mode == "random":
        raise CapabilityError(f"{who} cannot be rendered tile by tile exactly with --noise random (each tile "
                              "would draw its own noise); use --noise const or off")
    G.check(options, grid, model)
    if tile is None:
        tile = tile_side(G, grid, options, TILE_MEMORY if limit is None else min(TILE_MEMORY, limit))
    tile = max(minimum, tile) // stride * stride
    # a canvas thinner than the minimum tile: tiles as long along it as a minimum tile's area needs
    min_h, min_w = (min(n, stride * math.ceil(minimum**2 / m / stride)) if m < minimum else minimum
                    for n, m in ((grid.height, grid.width), (grid.width, grid.height)))
    th, tw = min(grid.height, max(tile, min_h)), min(grid.width, max(tile, min_w))
    need = G.memory_estimate(1, grid.crop(0, 0, th, tw), options) + BAND_BYTES * th * grid.width
    check_memory(need, limit, f"rendering {grid.height}x{grid.width} in {th}x{tw} tiles",
                 f"the smallest exact tile here is {minimum}" if tile <= minimum else "give a smaller --tile")
    return TilePlan((th, tw), tile_spans(grid.height, th, stride, min_h), tile_spans(grid.width, tw, stride, min_w))


@torch.no_grad()
def tiles(G: Generator, latent: torch.Tensor, grid: Grid, plan: TilePlan,
          options: RenderOptions = RenderOptions()) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(top, left, image [1, C, h, w]) of every tile of one latent [1, ...] on `grid` as `plan` cuts it,
    row of tiles by row of tiles, left to right: the pixels of the canvas from (top, left)."""
    if len(latent) != 1:
        raise ValueError(f"tiles render one latent, got {len(latent)}")
    latent = latent.to(next(G.parameters()).device)
    for top, y0, h in plan.rows:
        for left, x0, w in plan.cols:
            yield top, left, G.render(latent, grid.crop(y0, x0, h, w), options)[:, :, top - y0:, left - x0:]


def render_png(G: Generator, latent: torch.Tensor, grid: Grid, path: str | Path,
               options: RenderOptions = RenderOptions(), *, tile: int | None = None, limit: int | None = None,
               model: str | None = None, progress: bool = False) -> tuple[int, int]:
    """Render one latent [1, ...] on `grid` tile by tile (`plan_tiles`: `tile`, `limit`, `model`) into the
    PNG file `path`, streamed and written atomically; returns the tile size used (height, width)."""
    from tqdm import tqdm

    plan = plan_tiles(G, grid, options, tile=tile, limit=limit, model=model)

    def write(tmp: str) -> None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an image like any other (the temporary file is private)
        with open(tmp, "wb") as f, tqdm(total=grid.height * grid.width, disable=not progress, unit="px",
                                         unit_scale=True, desc="rendering {}x{} tiles".format(*plan.size),
                                         dynamic_ncols=True) as bar:
            png, rows = PNGWriter(f, grid.height, grid.width), None
            for top, left, image in tiles(G, latent, grid, plan, options):
                if left == 0:  # a new row of tiles: the last one is complete
                    if rows is not None:
                        png.write(rows)
                    rows = np.empty((image.shape[-2], grid.width, 3), np.uint8)
                rows[:, left:left + image.shape[-1]] = to_uint8(image)[0]
                bar.update(image.shape[-2] * image.shape[-1])
            png.write(rows)
            png.close()

    atomic_write(path, write)
    return plan.size
