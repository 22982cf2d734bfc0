"""Feature networks behind one protocol, and the feature pass that FID / KID / P&R share.

A feature extractor is an `nn.Module` in eval mode with attributes `name: str` and
`feature_dim: int`; `extractor(images)` maps images [N, C, H, W] in [-1, 1] (C = 1 or 3,
any H, W: each network does its own resize) to float32 features [N, feature_dim].
`FEATURE_EXTRACTORS` maps the CLI name to a loader `(device, weights=None) -> extractor`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from posgen.metrics.digits_features import load_digits_extractor
from posgen.metrics.inception import load_inception


class FeatureExtractor(Protocol):
    name: str
    feature_dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


FEATURE_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    "inception": load_inception,
    "digits": load_digits_extractor,
}
