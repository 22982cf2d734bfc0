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
    """[N, C, H, W] -> [N, C, 2H, 2W]; the outermost output pixel on each side sees the border."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


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
