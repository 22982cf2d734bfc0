"""Latent codes that G's images must carry: InfoGAN's mutual-information term (Chen et al. 2016, Sec. 5),
as a lever against the collapse inside a class (docs/recipe.md).

InfoGAN maximises a lower bound on the mutual information between a few latent codes c and the image
G(z, c): an auxiliary network Q predicts the codes from the image and G and Q minimise
-E[log Q(c | G(z, c))] together (Eq. 5). With a Gaussian Q of fixed unit variance that is, up to a
constant, half the squared error of Q's estimate, the form used here. Here the codes are not extra
inputs: they are `codes` coordinates of z itself (after the class coordinate of a class-conditional
run, ops/mapping.py), so a model trained with them is an ordinary posgen generator.

Q sees only the *shape* of an image: HSV's value (the largest channel), standardised per image. Hue and
overall brightness, which G's last to-RGB modulation sets cheaply, cannot carry the codes, so G has to
draw different strokes for different codes: the glyph variety a collapsed G lacks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posgen.ops import EqualConv2d, EqualLinear, blur_downsample


def glyph_shape(images: torch.Tensor) -> torch.Tensor:
    """The shape of images [N, C, H, W]: HSV's value (the largest channel), standardised per image, [N, 1, H, W].
    Blind to hue and to overall brightness and contrast, which G's last to-RGB sets cheaply."""
    v = images.amax(1, keepdim=True)
    return (v - v.mean(dim=(2, 3), keepdim=True)) / (v.std(dim=(2, 3), keepdim=True) + 1e-4)


class CodeRegressor(nn.Module):
    """Q: images [N, C, H, W] in [-1, 1] -> estimates of `codes` latent coordinates [N, codes]. A small
    conv net (1x1 from the value channel, then 3x3 conv + blur-downsample down to 4x4, `width` channels)
    and a linear layer; any input size (the last feature map is pooled to 4x4)."""

    def __init__(self, resolution: int, codes: int, width: int = 32) -> None:
        super().__init__()
        if codes < 1:
            raise ValueError(f"a code regressor needs at least one code, got {codes}")
        self.codes = codes
        steps = max(int(math.log2(resolution)) - 2, 0)
        self.fromvalue = EqualConv2d(1, width // 2, 1, activation=True)
        self.convs = nn.ModuleList(EqualConv2d(width // 2 if i == 0 else width, width, 3, padding=1, activation=True)
                                   for i in range(steps))
        self.out = EqualLinear(width * 16, codes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.fromvalue(glyph_shape(images))
        for conv in self.convs:
            x = blur_downsample(conv(x))
        return self.out(F.adaptive_avg_pool2d(x, 4).flatten(1))

    def loss(self, images: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """InfoGAN's L_I for a unit-variance Gaussian Q: half the mean squared error of Q's estimate."""
        if codes.shape != (len(images), self.codes):
            raise ValueError(f"expected codes [{len(images)}, {self.codes}], got {tuple(codes.shape)}")
        return 0.5 * (self(images) - codes).square().mean()
