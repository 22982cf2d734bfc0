"""The StyleGAN mapping network z -> w, shared by every style-based generator family."""
from __future__ import annotations

import torch
from torch import nn

from posgen.ops.equalized import EqualLinear


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through an MLP at a reduced learning rate; tracks w_avg."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_multiplier: float) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_multiplier=lr_multiplier, activation=True)
                                      for a, b in zip(dims[:-1], dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        z = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()  # [N, z_dim]
        w = self.layers(z)  # [N, w_dim]
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w
