"""Where each output pixel sits: the coordinate grid every posgen generator renders on.

A generator is a function of (latent, grid). The frame is continuous and measured in
output-pixel units of the training resolution: on the default grid, pixel (row i, col j)
sits at (x=j, y=i). A `Grid` is a lattice of size (H, W) plus an affine map (3x3, acting
on homogeneous lattice indices (j, i, 1)) into that frame, optionally with a period
(a circular roll takes coordinates modulo the canvas). A `PointGrid` is an arbitrary set
of points, for pixel-independent generators (CIPS).

Convolutional generators ask for the lattice coordinates at each of their scales with
`Grid.scale_coords(stride, margin)`: a feature pixel at a scale with stride f covers f x f
output pixels, so its centre lies at output index f*a + (f-1)/2 and a shift of k output
pixels becomes a shift of k/f at that scale (Choi et al. Sec. 3.4). This is the same
half-pixel convention as bilinear resampling with align_corners=False.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["Canvas", "Grid", "PointGrid"]


def _translation(tx: float, ty: float) -> torch.Tensor:
    m = torch.eye(3, dtype=torch.float64)
    m[0, 2], m[1, 2] = tx, ty
    return m


@dataclass(frozen=True)
class Grid:
    """A lattice of `height` x `width` output pixels placed in the frame by `affine`.

    `affine` maps homogeneous lattice indices (j, i, 1) to frame coordinates (x, y, 1).
    `period` (py, px), when set, makes coordinates wrap modulo the canvas (circular roll).
    Grids are immutable; every transform returns a new grid.
    """

    height: int
    width: int
    affine: torch.Tensor = field(default_factory=lambda: torch.eye(3, dtype=torch.float64))
    period: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if int(self.height) != self.height or int(self.width) != self.width or self.height < 1 or self.width < 1:
            raise ValueError(f"grid size must be positive integers, got {self.height}x{self.width}")
        affine = torch.as_tensor(self.affine, dtype=torch.float64)
        if affine.shape != (3, 3):
            raise ValueError(f"grid affine must be 3x3, got {tuple(affine.shape)}")
        object.__setattr__(self, "affine", affine)

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    # ---- transforms -------------------------------------------------------------------
    def shift(self, dy: float, dx: float) -> Grid:
        """Move the image content by (dy, dx) output pixels (down, right); fractional allowed.

        The pixel at lattice (i, j) then shows what the unshifted grid had at (i - dy, j - dx).
        """
        return Grid(self.height, self.width, _translation(-dx, -dy) @ self.affine, self.period)

    def roll(self, dy: float, dx: float) -> Grid:
        """Circular shift (Choi et al. Sec. 3): like `shift`, with coordinates taken modulo the canvas."""
        period = self.period or self.extent()
        return Grid(self.height, self.width, _translation(-dx, -dy) @ self.affine, period)

    def zoom(self, factor: float, size: tuple[int, int] | None = None) -> Grid:
        """Same extent sampled `factor` times more densely; the lattice becomes `size`
        (default round(H*s) x round(W*s)). Pixel edges stay aligned: the top-left output
        pixel's outer corner stays where it was.
        """
        if factor <= 0:
            raise ValueError(f"zoom factor must be positive, got {factor}")
        h, w = size or (max(1, round(self.height * factor)), max(1, round(self.width * factor)))
        s = 1.0 / factor
        # new index k -> old index (k + 1/2) / factor - 1/2
        m = torch.tensor([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
        return Grid(h, w, self.affine @ m, self.period)

    def extent(self) -> tuple[float, float]:
        """Size (height, width) of the canvas in frame units (the lattice times its spacing)."""
        sx = float(torch.linalg.vector_norm(self.affine[:2, 0]))
        sy = float(torch.linalg.vector_norm(self.affine[:2, 1]))
        return (self.height * sy, self.width * sx)

    def resize(self, height: int, width: int) -> Grid:
        """Bigger or smaller canvas with the same spacing ("expand"): the top-left pixel stays put."""
        return Grid(height, width, self.affine, self.period)

    def center_crop_resize(self, height: int, width: int) -> Grid:
        """Same spacing, new canvas size, keeping the canvas centre fixed (extrapolate on all sides)."""
        oy, ox = (height - self.height) / 2, (width - self.width) / 2
        return Grid(height, width, self.affine @ _translation(-ox, -oy), self.period)

    def crop(self, top: int, left: int, height: int, width: int) -> Grid:
        """The `height` x `width` window of this lattice from index (top, left): its pixels keep their
        frame coordinates (a tile for streamed rendering, a patch for patch-based training)."""
        return Grid(height, width, self.affine @ _translation(left, top), self.period)

    def rotate(self, angle: float, center: tuple[float, float] | None = None) -> Grid:
        """Rotate the image content by `angle` radians (counter-clockwise on screen) about `center` (y, x)."""
        cy, cx = center if center is not None else ((self.height - 1) / 2, (self.width - 1) / 2)
        c, s = math.cos(angle), math.sin(angle)
        # content rotates by +angle, so coordinates rotate by -angle (y axis points down)
        rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        return Grid(self.height, self.width, _translation(cx, cy) @ rot @ _translation(-cx, -cy) @ self.affine, self.period)

    # ---- coordinates --------------------------------------------------------------------
    def coords(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Frame coordinates of every output pixel, [2, H, W] with channels (x, y)."""
        return self.scale_coords(1, 0, device=device, dtype=dtype)

    def scale_lattice(self, stride: int, margin: int = 0) -> tuple[int, int]:
        """Lattice size at a scale with `stride`: enough feature pixels to cover the grid, plus margins."""
        return (math.ceil(self.height / stride) + 2 * margin, math.ceil(self.width / stride) + 2 * margin)

    def scale_coords(
        self,
        stride: int,
        margin: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Coordinates in units of a scale with `stride` f, [2, h + 2m, w + 2m] with channels (x, y).

        Feature pixel a (from -margin on) covers output indices f*a .. f*a + f - 1; its coordinate
        is u = (X(f*a + (f-1)/2) - (f-1)/2) / f where X is the grid's affine map, so on the
        default grid u = a, and a shift of k output pixels shifts u by k/f.
        """
        h, w = self.scale_lattice(stride, margin)
        c = (stride - 1) / 2
        a_y = torch.arange(h, dtype=torch.float64) - margin
        a_x = torch.arange(w, dtype=torch.float64) - margin
        iy, ix = torch.meshgrid(a_y * stride + c, a_x * stride + c, indexing="ij")
        ones = torch.ones_like(ix)
        xy = torch.einsum("rk,khw->rhw", self.affine[:2], torch.stack([ix, iy, ones]))
        u = (xy - c) / stride  # [2, h, w]
        if self.period is not None:
            period = torch.tensor([self.period[1], self.period[0]], dtype=torch.float64).view(2, 1, 1) / stride
            u = torch.remainder(u, period)
        return u.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class PointGrid:
    """An arbitrary set of P points (x, y) in the frame, for pixel-independent generators."""

    points: torch.Tensor  # [P, 2] (x, y)

    def __post_init__(self) -> None:
        pts = torch.as_tensor(self.points, dtype=torch.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be [P, 2] (x, y), got {tuple(pts.shape)}")
        object.__setattr__(self, "points", pts)

    @classmethod
    def from_grid(cls, grid: Grid, index: torch.Tensor | None = None) -> PointGrid:
        """The lattice pixels of `grid` as points, in row-major order; `index` picks some by flat index."""
        points = grid.coords(dtype=torch.float64).flatten(1).T  # [H*W, 2]
        return cls(points if index is None else points[index])

    def coords(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[2, P] with channels (x, y)."""
        return self.points.T.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class Canvas:
    """What to render, relative to a generator's training grid: the one place where command and
    app options (--size, --zoom, --shift, --roll, --rotate) become a `Grid`, with one meaning
    everywhere.

    zoom:   samples per training pixel (2: the same extent twice as densely, "interp");
    size:   the output lattice (H, W); default the training size times `zoom`. A size alone
            shows more (or less) of the plane at the training spacing ("expand");
    rotate: degrees, counter-clockwise on screen, about the centre of the canvas;
    shift:  (dy, dx) in training pixels, fractional allowed, applied last; `roll` takes the
            coordinates modulo the canvas (a circular shift).
    """

    size: tuple[int, int] | None = None
    zoom: float = 1.0
    shift: tuple[float, float] | None = None
    roll: bool = False
    rotate: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.zoom) and self.zoom > 0):
            raise ValueError(f"zoom must be a positive number, got {self.zoom}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"canvas size must be two positive integers, got {self.size}")
        if not math.isfinite(self.rotate) or (self.shift is not None and not all(map(math.isfinite, self.shift))):
            raise ValueError("rotate and shift must be finite numbers")

    @classmethod
    def multiscale(cls, size: int, mode: str, resolution: int) -> Canvas:
        """A size x size training canvas of multi-scale training (MS-PIE): "expand" shows more of
        the plane at the training spacing, "interp" samples the training extent more densely."""
        return cls(zoom=size / resolution) if mode == "interp" else cls(size=(size, size))

    def requested(self) -> dict[str, str]:
        """capability -> option, for the grid transforms this canvas asks of a generator."""
        asked = {}
        if self.zoom != 1.0:
            asked["zoom"] = "--zoom"
        if self.size is not None:
            asked["expand"] = "--size"
        if self.rotate:
            asked["rotate"] = "--rotate"
        if self.shift is not None:
            asked["roll" if self.roll else "shift"] = "--roll" if self.roll else "--shift"
        return asked

    def grid(self, training: Grid) -> Grid:
        """This canvas on a generator whose training grid is `training`."""
        h, w = training.size
        size = self.size or (max(1, round(h * self.zoom)), max(1, round(w * self.zoom)))
        grid = training if size == training.size and self.zoom == 1.0 else training.zoom(self.zoom, size=size)
        if self.rotate:
            centre = grid.affine @ torch.tensor([(grid.width - 1) / 2, (grid.height - 1) / 2, 1.0], dtype=torch.float64)
            grid = grid.rotate(math.radians(self.rotate), center=(float(centre[1]), float(centre[0])))
        if self.shift is not None:
            grid = grid.roll(*self.shift) if self.roll else grid.shift(*self.shift)
        return grid
