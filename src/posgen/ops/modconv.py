"""The modulated convolution layer of StyleGAN2 (Karras et al. 2020, Eq. 1-3), with the
variants of the positional-encoding papers as constructor arguments (never forks):

- padding: "zero" (same-size output; zero padding is the implicit positional encoding that
  Xu et al. Sec. 3.3 analyse) or "none" (valid convolution: the caller feeds a margin);
- up: None, "bilinear" (Xu et al.: bilinear upsampling then conv) or "transposed"
  (StyleGAN2: stride-2 transposed conv then [1, 3, 3, 1] blur);
- positional_encoding: an encoding added after the activation with a learnable scalar
  gamma (Choi et al. Eq. 3: h^{l+1} = G^l(w^l, h^l) + gamma^l PE^l);
- activation: "lrelu" (StyleGAN2), "sine" (the sine-activation ablation of CIPS, Anokhin et
  al. Table 3) or None (linear). With kernel_size=1 and no noise, the layer is CIPS's ModFC
  (Anokhin et al. Eq. 2).

Modulation and demodulation are applied to activations rather than to per-sample weights
(equivalent, and a plain batched convolution is faster on CPU than a grouped one).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from posgen.ops.equalized import EqualLinear, leaky_relu
from posgen.ops.noise import NoiseInput, NoiseMode
from posgen.ops.resample import center_crop, upsample2x

Padding = Literal["zero", "none"]
Upsample = Literal["bilinear", "transposed"]
Activation = Literal["lrelu", "sine"]


class ModulatedConv2d(nn.Module):
    """Style-modulated conv + noise + bias + activation (+ gamma * PE).

    Args:
        in_channels, out_channels, kernel_size: the convolution.
        w_dim:        width of the intermediate latent w.
        padding:      "zero" or "none" (valid conv; output shrinks by kernel_size - 1).
        up:           None, "bilinear" or "transposed" 2x upsampling before the conv.
        demodulate:   weight demodulation (Eq. 3 of StyleGAN2).
        noise_seed:   per-layer seed of the const noise field; None disables noise.
        activation:   after the bias: "lrelu" leaky ReLU(0.2) with gain sqrt(2), "sine" sin(x)
                      (no SIREN omega_0: demodulated pre-activations are about unit-variance), None linear.
        positional_encoding: module mapping coords -> [N, out_channels, H, W] to add with gamma.
        gamma_init:   initial gamma (Choi et al.'s official code starts at 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        *,
        padding: Padding = "zero",
        up: Upsample | None = None,
        demodulate: bool = True,
        noise_seed: int | None = None,
        activation: Activation | None = "lrelu",
        positional_encoding: nn.Module | None = None,
        gamma_init: float = 1.0,
    ) -> None:
        super().__init__()
        if padding not in ("zero", "none"):
            raise ValueError(f"padding must be 'zero' or 'none', got {padding!r}")
        if up not in (None, "bilinear", "transposed"):
            raise ValueError(f"up must be None, 'bilinear' or 'transposed', got {up!r}")
        if up == "transposed" and padding == "none":
            raise ValueError("a transposed convolution pads implicitly; padding-free layers need up='bilinear'")
        if activation not in (None, "lrelu", "sine"):
            raise ValueError(f"activation must be None, 'lrelu' or 'sine', got {activation!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.padding, self.up, self.demodulate, self.activation = padding, up, demodulate, activation
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = (in_channels * kernel_size * kernel_size) ** -0.5
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise = NoiseInput(noise_seed) if noise_seed is not None else None
        self.positional_encoding = positional_encoding
        if positional_encoding is not None:
            if positional_encoding.out_channels != out_channels:
                raise ValueError(f"positional encoding has {positional_encoding.out_channels} channels, layer has {out_channels}")
            self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def forward(self, x: torch.Tensor, w: torch.Tensor, coords: torch.Tensor | None = None,
                noise_mode: NoiseMode = "random") -> torch.Tensor:
        """x [N, Cin, H, W], w [N, w_dim], coords [2, H', W'] of the output lattice -> [N, Cout, H', W']."""
        styles = self.affine(w)  # [N, Cin]
        weight = self.weight * self.weight_gain  # [Cout, Cin, k, k]
        x = x * styles[:, :, None, None]
        pad = self.kernel_size // 2 if self.padding == "zero" else 0
        if self.up == "transposed":
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # [N, Cout, 2H+1, 2W+1]
            x = _blur(x)  # [N, Cout, 2H, 2W]
        else:
            if self.up == "bilinear":
                x = upsample2x(x)
            x = F.conv2d(x, weight, padding=pad)
        if self.padding == "none" and coords is not None:
            x = center_crop(x, coords.shape[-2:])  # drop margin pixels that saw the upsampling border
        if self.demodulate:
            dcoefs = ((weight.square().sum(dim=(2, 3))[None] * styles[:, None].square()).sum(dim=2) + 1e-8).rsqrt()
            x = x * dcoefs[:, :, None, None]  # [N, Cout, 1, 1]
        if self.noise is not None:
            x = self.noise(x, coords, noise_mode)
        x = x + self.bias[None, :, None, None]
        if self.activation == "lrelu":
            x = leaky_relu(x)
        elif self.activation == "sine":
            x = torch.sin(x)
        if self.positional_encoding is not None:
            x = x + self.gamma * self.positional_encoding(coords).to(x)  # Choi Eq. 3
        return x


def _blur(x: torch.Tensor) -> torch.Tensor:
    """[1, 3, 3, 1] blur after a stride-2 transposed conv (gain 4 for the zero insertion); shrinks by 1."""
    c = x.shape[1]
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device, dtype=x.dtype) / 4.0
    x = F.pad(x, (1, 1, 1, 1))
    x = F.conv2d(x, k.view(1, 1, 1, 4).expand(c, 1, 1, 4), groups=c)
    return F.conv2d(x, k.view(1, 1, 4, 1).expand(c, 1, 4, 1), groups=c)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, plus bias (the skip-to-RGB output)."""

    def __init__(self, in_channels: int, w_dim: int, out_channels: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, w_dim, demodulate=False, activation=None)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w, noise_mode="off")
