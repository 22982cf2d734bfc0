"""Shared shape handling for encodings: coords in, (x, y) channel planes out."""
from __future__ import annotations

import torch


def split_xy(coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[2, ...] or [N, 2, ...] -> x, y each [N, 1, ...]."""
    if coords.ndim in (2, 3):
        coords = coords.unsqueeze(0)
    if coords.ndim not in (3, 4) or coords.shape[1] != 2:
        raise ValueError(f"coords must be [2, H, W], [N, 2, H, W], [2, P] or [N, 2, P]; got {tuple(coords.shape)}")
    return coords[:, 0:1], coords[:, 1:2]
