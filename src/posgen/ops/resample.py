"""Resampling with the [1, 3, 3, 1] binomial filter, aligned to the grid convention.

`upsample2x` is bilinear with align_corners=False: fine pixel b sits at coarse coordinate
(b + 1/2)/2 - 1/2, exactly what `Grid.scale_coords` assigns to the two scales, so
encodings computed at each scale and features upsampled from the coarser one agree.
In the interior it equals zero insertion followed by the [1, 3, 3, 1] filter (x2 gain).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8.0


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W]: bilinear with align_corners=False (the border replicated, so the
    outermost output pixel on each side sees the border).

    Computed per axis with elementwise products and sums (fine pixel 2a = 3/4 x[a] + 1/4 x[a-1], 2a+1 =
    3/4 x[a] + 1/4 x[a+1]) rather than by F.interpolate: every output value is then the same expression
    of the same inputs wherever it lies in the tensor, so a window of the input gives that window of the
    output bit for bit. F.interpolate's vectorised kernel rounds differently by position, which would break
    exact tiles (`posgen.tiling`); this costs about 2.5x its time, a few percent of a render.
    """
    return _upsample_axis(_upsample_axis(x, -1), -2)


def _upsample_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """2x bilinear along dim -1 or -2 (see `upsample2x`): (even, odd) fine pixels of each pixel, interleaved."""
    n = x.shape[dim]
    quarter = F.pad(x, (1, 1, 0, 0) if dim == -1 else (0, 0, 1, 1), mode="replicate") * 0.25
    three = x * 0.75
    before, after = quarter.narrow(dim, 0, n), quarter.narrow(dim, 2, n)  # 1/4 of x[a - 1], of x[a + 1]
    if torch.is_grad_enabled() and x.requires_grad:  # out= has no autograd: the same sums, stacked
        out = torch.stack([three + before, three + after], dim=dim)
    else:
        shape = list(x.shape)
        shape.insert(len(shape) + dim + 1, 2)
        out = x.new_empty(shape)
        torch.add(three, before, out=out.select(dim, 0))
        torch.add(three, after, out=out.select(dim, 1))
    return out.flatten(dim - 1, dim)


def blur_downsample(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/2, W/2]: out[a] = (x[2a-1] + 3x[2a] + 3x[2a+1] + x[2a+2]) / 8 per axis."""
    c = x.shape[1]
    k = _BINOMIAL.to(x)
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 4).expand(c, 1, 1, 4), stride=(1, 2), groups=c)
    return F.conv2d(x, k.view(1, 1, 4, 1).expand(c, 1, 4, 1), stride=(2, 1), groups=c)


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Trim equal margins from each side of [..., H, W] down to `size` (margins of valid convs)."""
    dy, dx = x.shape[-2] - size[0], x.shape[-1] - size[1]
    if dy < 0 or dx < 0 or dy % 2 or dx % 2:
        raise ValueError(f"cannot center-crop {tuple(x.shape[-2:])} to {tuple(size)}")
    return x[..., dy // 2: dy // 2 + size[0], dx // 2: dx // 2 + size[1]]
