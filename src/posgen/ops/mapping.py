"""The StyleGAN mapping network z -> w, shared by every style-based generator family, optionally
class-conditional with the class carried by the latent itself (`latent_classes`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posgen.ops.equalized import EqualLinear


def latent_classes(z: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class a latent z [N, z_dim] carries: c = floor(K * Phi(z_0)), Phi the standard normal CDF.

    The K cells split the first coordinate into equally likely intervals, so z ~ N(0, I) draws every
    class with probability 1 / K, and anything that draws or interpolates latents (seeds, projections,
    videos, SeFa) needs no label beside them."""
    return (torch.special.ndtr(z[:, 0].double()) * num_classes).long().clamp(0, num_classes - 1)


def with_class(z: torch.Tensor, classes: torch.Tensor | int, num_classes: int) -> torch.Tensor:
    """`z` with its first coordinate moved into the cell of `classes` (same relative place inside its
    cell), so that `latent_classes` of the result is `classes`; the other coordinates are untouched."""
    u = torch.special.ndtr(z[:, 0].double()) * num_classes
    within = u - u.floor()  # where z_0 sits inside its own cell, in [0, 1)
    c = torch.as_tensor(classes, dtype=torch.float64).expand_as(within)
    if ((c < 0) | (c >= num_classes) | (c != c.floor())).any():
        raise ValueError(f"classes must be integers in [0, {num_classes}), got {classes}")
    p = ((c + within) / num_classes).clamp(1e-12, 1 - 1e-12)
    z = z.clone()
    z[:, 0] = torch.special.ndtri(p).to(z.dtype)
    return z


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    """x scaled to unit mean square along dim 1 (PGGAN's pixel norm, Karras et al. 2018, Sec. 4.2; StyleGAN's z)."""
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through an MLP at a reduced learning rate; tracks w_avg.

    With `num_classes` K > 0 the network is class-conditional as in StyleGAN2-ADA (Karras et al. 2020b):
    the one-hot class, embedded by a linear layer to w_dim and normalised like z, is concatenated to z.
    The class is the one z carries (`latent_classes`), so the generator stays a function of z and grid."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_multiplier: float, num_classes: int = 0) -> None:
        super().__init__()
        if num_classes < 0 or num_classes == 1:
            raise ValueError(f"num_classes must be 0 (unconditional) or at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_multiplier=lr_multiplier, activation=True)
                                      for a, b in zip(dims[:-1], dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def classes(self, z: torch.Tensor) -> torch.Tensor:
        """The class each latent of z [N, z_dim] carries (int64 [N]); requires a conditional network."""
        if not self.num_classes:
            raise ValueError("this mapping network is unconditional (num_classes 0): its latents carry no class")
        return latent_classes(z, self.num_classes)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        x = normalize_2nd_moment(z)  # [N, z_dim]
        if self.embed is not None:
            onehot = F.one_hot(self.classes(z), self.num_classes).to(z.dtype)
            x = torch.cat([x, normalize_2nd_moment(self.embed(onehot))], dim=1)
        w = self.layers(x)  # [N, w_dim]
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w
