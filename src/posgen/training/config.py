"""Training settings (StyleGAN2 reference values from DESIGN.md as defaults)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class MultiScaleConfig:
    """Multi-scale training. Empty `sizes`: single-scale.

    MS-PIE (Xu et al. Sec. 3.5): canvas sizes drawn with `probs` per iteration, reals resized to
    that size, D with adaptive pooling. Random resizing (Choi et al. Sec. 4.2):
    `resize_to_discriminator=true`, the generated image is resized to D's resolution.
    `grid`: "expand" renders a larger canvas at the same pixel spacing, "interp" the same
    extent more densely (zoom).
    """

    sizes: tuple[int, ...] = ()
    probs: tuple[float, ...] | None = None  # None: uniform
    grid: Literal["expand", "interp"] = "expand"
    resize_to_discriminator: bool = False

    def validate(self) -> None:
        if any(s < 8 for s in self.sizes):
            raise ValueError(f"multiscale sizes must be >= 8, got {list(self.sizes)}")
        if self.probs is not None:
            if len(self.probs) != len(self.sizes):
                raise ValueError(f"multiscale.probs has {len(self.probs)} values for {len(self.sizes)} sizes")
            if any(p < 0 for p in self.probs) or not math.isclose(sum(self.probs), 1.0, abs_tol=1e-6):
                raise ValueError(f"multiscale.probs must be non-negative and sum to 1, got {list(self.probs)}")


@dataclass
class TrainConfig:
    batch_size: int = 32
    kimg: float = 6400.0           # training length in thousands of real images shown to D
    lr: float = 2e-3               # G and D
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 10.0
    r1_interval: int = 16          # lazy R1 every this many D steps
    ema_kimg: float = 10.0         # EMA half-life in thousands of images
    ema_rampup: float | None = 0.05  # half-life limited to this fraction of images seen (short runs)
    style_mixing: float = 0.9
    xflip: bool = True
    w_avg_beta: float = 0.995      # tracking of the mean w for truncation
    snapshot_kimg: float = 50.0    # checkpoint + sample grid interval
    sample_seeds: int = 32         # seeds in each sample grid
    threads: int = 0               # torch CPU threads (0: leave torch's default)
    multiscale: MultiScaleConfig = field(default_factory=MultiScaleConfig)

    def validate(self) -> None:
        if self.batch_size < 1 or self.kimg <= 0 or self.lr <= 0 or self.r1_interval < 1:
            raise ValueError("train.batch_size, train.kimg, train.lr and train.r1_interval must be positive")
        if self.snapshot_kimg <= 0:
            raise ValueError(f"train.snapshot_kimg must be positive, got {self.snapshot_kimg}")
        self.multiscale.validate()

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.kimg * 1000 / self.batch_size))
