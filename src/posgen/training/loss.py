"""The StyleGAN loss as an object: non-saturating logistic loss with lazy R1 (Karras et al. 2020),
and the seam where the images D sees are prepared (`d_input`): StyleGAN3's Gaussian blur of D's
inputs, sigma fading to 0 over the first images (Karras et al. 2021, Sec. 3.2 of the notes), then
adaptive discriminator augmentation (StyleGAN2-ADA, `posgen.training.augment`) of everything D
sees, reals and fakes alike, differentiably so that G learns the clean distribution.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posgen.training.augment import Augment
from posgen.training.config import GANTrainConfig


class StyleGANLoss:
    """Losses of one GAN run. `D` is the discriminator; `cfg` the GAN training config. `augment`
    (an `Augment` with its adaptive p, None when ADA is off) holds state that a resume restores."""

    def __init__(self, D: nn.Module, cfg: GANTrainConfig) -> None:
        self.D, self.cfg = D, cfg
        self.augment = Augment(cfg.augment) if cfg.augment.enabled else None

    def blur_sigma(self, kimg: float) -> float:
        """D-input blur in pixels at `kimg`: blur_sigma fading linearly to 0 over blur_fade_kimg."""
        t = self.cfg
        return max(0.0, 1.0 - kimg / t.blur_fade_kimg) * t.blur_sigma if t.blur_sigma > 0 else 0.0

    def d_input(self, images: torch.Tensor, kimg: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """What D sees of `images` [N, C, H, W] at `kimg`: blurred (StyleGAN3's early blur), then
        augmented (ADA) with random numbers from `generator` (identity when both are off)."""
        sigma = self.blur_sigma(kimg)
        if sigma > 0:
            images = gaussian_blur(images, sigma)
        return self.augment(images, generator) if self.augment is not None else images

    def discriminate(self, images: torch.Tensor, kimg: float, generator: torch.Generator | None = None,
                     classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits for `images` (and their `classes`, for a class-conditional D), and D's auxiliary
        class logits [N, K] when the loss uses them (`class_weight` > 0; else None)."""
        x = self.d_input(images, kimg, generator)
        if classes is not None and self.cfg.class_weight > 0:
            return self.D(x, classes, classify=True)
        return self.D(x, classes), None

    def generator_loss(self, fakes: torch.Tensor, kimg: float, generator: torch.Generator | None = None,
                       classes: torch.Tensor | None = None) -> torch.Tensor:
        """Non-saturating loss softplus(-D(G(z))), plus class_weight * the cross-entropy of D's auxiliary
        classifier on the fakes against the classes they were drawn for (AC-GAN, Odena et al. 2017),
        hinged at `class_confidence`: a fake whose asked class D's classifier already gives that
        probability adds nothing, so G is not pushed further towards the most classifiable glyph of
        each class (AC-GAN's collapse inside a class). With class_confidence 1 it is the plain AC term."""
        logits, class_logits = self.discriminate(fakes, kimg, generator, classes)
        loss = F.softplus(-logits).mean()
        if class_logits is not None:
            ce = F.cross_entropy(class_logits, classes, reduction="none")
            margin = -math.log(self.cfg.class_confidence)
            loss = loss + self.cfg.class_weight * (ce - margin).clamp(min=0).mean()
        return loss

    def discriminator_loss(self, reals: torch.Tensor, fakes: torch.Tensor, kimg: float, r1: bool,
                           generator: torch.Generator | None = None, real_classes: torch.Tensor | None = None,
                           fake_classes: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """softplus(D(fake)) + softplus(-D(real)), plus the lazy R1 penalty on reals when `r1`
        (gamma/2 * |grad D(real)|^2, scaled by the interval; with ADA, the gradient of D on the
        augmented reals with respect to the clean ones). With ADA, the reals' mean logit sign
        (r_t) then moves the augmentation probability p. A class-conditional D takes each image's class;
        with `class_weight` its auxiliary classifier learns the reals' classes (cross-entropy, reals only)."""
        t = self.cfg
        reals = reals.detach().requires_grad_(r1)
        real_logits, real_class_logits = self.discriminate(reals, kimg, generator, real_classes)
        fake_logits, _ = self.discriminate(fakes.detach(), kimg, generator, fake_classes)
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        stats = {"loss/D": loss.item(), "D/real": real_logits.mean().item(), "D/fake": fake_logits.mean().item(),
                 "D/real_sign": real_logits.sign().mean().item()}
        if real_class_logits is not None:
            class_loss = F.cross_entropy(real_class_logits, real_classes)
            loss = loss + t.class_weight * class_loss
            stats["D/class_loss"] = class_loss.item()
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
            penalty = grad.square().sum(dim=(1, 2, 3)).mean()
            loss = loss + penalty * (t.r1_gamma / 2) * t.r1_interval
            stats["loss/R1"] = penalty.item()
        if self.augment is not None:
            self.augment.update(stats["D/real_sign"], len(reals))
            stats.update(self.augment.stats())
        return loss, stats


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] with std `sigma` pixels (taps to 2 sigma), edges replicated."""
    radius = max(1, int(2 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (taps / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
