"""Residual StyleGAN2 discriminator (Karras et al. 2020) with minibatch standard deviation,
the 2x2 adaptive average pool of Xu et al. Sec. 3.5 (MS-PIE) so that one D takes several input
sizes, PacGAN packing and, for class-conditional runs, the projection head of StyleGAN2-ADA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from posgen.ops import EqualConv2d, EqualLinear, blur_downsample


@dataclass
class DiscriminatorConfig:
    resolution: int = 256
    channel_base: int = 16384
    channel_max: int = 512
    img_channels: int = 3
    mbstd_group: int = 4
    mbstd_channels: int = 1
    adaptive_pool: bool = False  # Xu et al. 3.5: 2x2 adaptive average pool before the linear layers
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges packs of this many images of one kind
                   # (of one class too in class-conditional runs: GANTrainer draws each pack from one class)
    pack_at: str = "input"  # "input": a pack's images stacked along channels (PacGAN); "features": each image through
                            # the trunk alone (per-image class head), the pack's feature vectors joined before the logit
    num_classes: int = 0  # > 0: D(x, c) by projection onto an embedding of the classes (StyleGAN2-ADA)

    def validate(self) -> None:
        if self.pack < 1:
            raise ValueError(f"discriminator.pack must be >= 1, got {self.pack}")
        if self.pack_at not in ("input", "features"):
            raise ValueError(f"discriminator.pack_at must be 'input' or 'features', got {self.pack_at!r}")
        if self.num_classes < 0 or self.num_classes == 1:
            raise ValueError(f"discriminator.num_classes must be 0 (unconditional) or at least 2, got {self.num_classes}")

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


class DiscriminatorBlock(nn.Module):
    """conv 3x3, blur-downsample + conv 3x3, with a 1x1 downsampled skip; sums scaled by 1/sqrt(2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3, padding=1, activation=True)
        self.conv1 = EqualConv2d(cin, cout, 3, padding=1, activation=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(blur_downsample(x))
        x = self.conv1(blur_downsample(self.conv0(x)))
        return (x + y) / math.sqrt(2)


def mbstd_group(n: int, group: int) -> int:
    """The group size minibatch_stddev uses for a batch of n: the largest divisor of n up to `group`."""
    return max(d for d in range(1, min(group, n) + 1) if n % d == 0)


def minibatch_stddev(x: torch.Tensor, group: int, channels: int) -> torch.Tensor:
    """Append the std over groups of samples as extra feature maps (StyleGAN, Sec. 4.1 of PGGAN).
    Sample i is in group i mod (N / G)."""
    n, c, h, w = x.shape
    g = mbstd_group(n, group)
    y = x.reshape(g, -1, channels, c // channels, h, w)  # [G, N/G, F, C/F, H, W]
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [N/G, F, C/F, H, W]
    y = y.mean(dim=(2, 3, 4)).reshape(-1, channels, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """D(images, classes) -> logits [N / pack]. Takes `resolution`-sized inputs, or any multiple-of-4 size
    whose downsampled feature is at least 2x2 when `adaptive_pool` is on. With `pack` > 1, images
    n*pack .. n*pack + pack - 1 are judged together (PacGAN; stacked along channels unless `pack_at` is
    "features", below): a collapsed
    G gives packs of near-identical images, which D can tell from packs of distinct real ones.

    With `num_classes` K > 0, `classes` (int64 [N]) are required and D is conditional by projection
    (Miyato & Koyama 2018, as in StyleGAN2-ADA's D epilogue): the last layer gives a feature vector f of
    c4 channels, the classes of a pack (its K-way one-hots side by side) are embedded to e of the same
    size, and the logit is <f, e> / sqrt(c4). It also has an auxiliary classifier head (AC-GAN, Odena et
    al. 2017) on the same features: `classify=True` returns (logits, class logits [N, K]), one row
    per image of each pack; the trainer uses it when `train.class_weight` > 0.

    With `pack_at` "features" the images of a pack are joined late: each image goes through the trunk on its
    own (so the classifier head reads single images), and a pack's feature vectors, side by side, pass one more
    fully-connected layer before the logit, which can still tell a pack of near-identical images from one of
    distinct reals."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        r = cfg.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {r}")
        self.cfg = cfg
        self.early = cfg.pack if cfg.pack_at == "input" else 1  # images stacked along the input channels
        self.late = cfg.pack // self.early  # feature vectors joined after the trunk
        self.fromrgb = EqualConv2d(cfg.img_channels * self.early, cfg.channels(r), 1, activation=True)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(cfg.channels(res), cfg.channels(res // 2))
                                      for res in [r // 2**k for k in range(int(math.log2(r)) - 2)]])
        c4 = cfg.channels(4)
        self.conv = EqualConv2d(c4 + cfg.mbstd_channels, c4, 3, padding=1, activation=True)
        side = 2 if cfg.adaptive_pool else 4
        self.fc = EqualLinear(c4 * side * side, c4, activation=True)
        self.join = EqualLinear(c4 * self.late, c4, activation=True) if self.late > 1 else None
        self.out = EqualLinear(c4, c4 if cfg.num_classes else 1)
        self.embed = EqualLinear(cfg.num_classes * cfg.pack, c4) if cfg.num_classes else None
        self.classifier = EqualLinear(c4, cfg.num_classes * self.early) if cfg.num_classes else None

    def forward(self, img: torch.Tensor, classes: torch.Tensor | None = None,
                classify: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        r = self.cfg.resolution
        if img.ndim != 4 or img.shape[1] != self.cfg.img_channels:
            raise ValueError(f"discriminator expects [N, {self.cfg.img_channels}, H, W], got {tuple(img.shape)}")
        if not self.cfg.adaptive_pool and tuple(img.shape[-2:]) != (r, r):
            raise ValueError(f"discriminator takes {r}x{r} images (enable adaptive_pool for other sizes), "
                             f"got {img.shape[-2]}x{img.shape[-1]}")
        n, c, h, w = img.shape
        if n % self.cfg.pack:
            raise ValueError(f"discriminator packs {self.cfg.pack} images: got a batch of {n}")
        x = self.blocks(self.fromrgb(img.reshape(n // self.early, c * self.early, h, w)))
        x = self.conv(minibatch_stddev(x, self.cfg.mbstd_group, self.cfg.mbstd_channels))
        if self.cfg.adaptive_pool:
            x = F.adaptive_avg_pool2d(x, 2)  # [N, C, 2, 2]
        features = self.fc(x.flatten(1))  # [N / early, c4]
        x = self.out(features if self.join is None else self.join(features.reshape(n // self.cfg.pack, -1)))
        if self.embed is None:
            if classes is not None or classify:
                raise ValueError("this discriminator is unconditional (num_classes 0): it takes no classes")
            return x.squeeze(1)
        k = self.cfg.num_classes
        if classes is None or classes.shape != (n,):
            raise ValueError(f"a class-conditional discriminator needs one class per image ([{n}]), got "
                             f"{None if classes is None else tuple(classes.shape)}")
        onehot = F.one_hot(classes.to(img.device).long(), k).to(x.dtype).reshape(n // self.cfg.pack, self.cfg.pack * k)
        logits = (x * self.embed(onehot)).sum(1) / math.sqrt(x.shape[1])
        return (logits, self.classifier(features).reshape(n, k)) if classify else logits
