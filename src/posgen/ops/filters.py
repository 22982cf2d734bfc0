"""Alias-free resampling for StyleGAN3 (Karras et al. 2021, "Alias-Free GANs"; paper 004 in
../shared/papers): Kaiser-windowed sinc low-pass filters (App. C: Kaiser's formulas), the radially
symmetric jinc-based low-pass filter of the rotation-equivariant config R (Sec. 2.1, "the ideal
such filter is jinc(s|x|) = 2 J1(pi s|x|) / (pi s|x|)"), up/downsampling by integer factors, and
the filtered non-linearity (Sec. 2.1: upsample -> bias + leaky ReLU -> downsample).

Units: frequencies and sampling rates are in cycles / samples per unit length (StyleGAN3 uses the
canvas width); `fs` is the sampling rate at which the taps are laid out.

Lattice convention (the same half-pixel convention as `posgen.grid`): at stride f (output pixels
per sample) sample a sits at position f*a + (f-1)/2. Upsampling a signal by u therefore puts coarse
sample a at fine index u*a + (u-1)/2, between two fine samples when u is even; filters have an even
number of taps so that their taps sit at half-integer offsets and every output lands on the
lattice. The functions below take and return the lattice index of a tensor's first element, so a
caller asks for exactly the output samples it needs; samples past the input's ends count as zero.

Implementation: a separable resampling along one axis is a banded matrix (`resampling_matrix`: the
polyphase filter bank written out, zero insertion and decimation included, rows only for the samples
asked for), so up- and downsampling are two dense matrix products each over all N*C channels at
once. On CPU these GEMMs beat single-channel, depthwise or transposed convolutions several times
over (measured here: 23 ms vs 54-345 ms for one pass at 16x64x52x52). The radial filter of config R
runs as the sum of its few separable SVD terms, fused into the same two products. Pure PyTorch,
every device.

The CUDA fast path: the bias, leaky ReLU, gain and clamp run at the temporary (highest) rate on the
largest tensor of the layer, as four memory-bound passes in eager mode. On CUDA they are fused into
one kernel by `torch.compile` (Triton, generated at first use; nothing compiled at install time),
shape-dynamic so one compilation serves every layer. The resampling products are already cuBLAS
GEMMs. Set POSGEN_PURE=1 to run the pure path on CUDA too (tests/test_filters.py checks parity).
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

__all__ = [
    "FilteredLeakyReLU", "bias_act", "downsample", "filtered_leaky_relu", "kaiser_attenuation", "kaiser_beta",
    "kaiser_numtaps", "kaiser_window", "lowpass_filter", "resample", "resampling_matrix", "upsample", "use_fast_path",
]


# ---- Kaiser's formulas (Kaiser 1974; StyleGAN3 App. C) -------------------------------------------
def kaiser_attenuation(numtaps: int, half_width: float, fs: float) -> float:
    """Stopband attenuation A in dB that `numtaps` taps reach with a transition band of
    +-`half_width` around the cutoff: N - 1 = (A - 7.95) / (2.285 * dw), dw = 2 pi (2 f_h) / fs."""
    dw = 2 * math.pi * (2 * half_width) / fs  # transition width in radians per sample
    return 2.285 * (numtaps - 1) * dw + 7.95


def kaiser_numtaps(attenuation: float, half_width: float, fs: float) -> int:
    """Taps needed for `attenuation` dB with transition half-width `half_width` (Kaiser's formula)."""
    dw = 2 * math.pi * (2 * half_width) / fs
    return max(1, math.ceil((attenuation - 7.95) / (2.285 * dw) + 1))


def kaiser_beta(attenuation: float) -> float:
    """Kaiser window shape parameter beta for a stopband attenuation in dB."""
    a = attenuation
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a >= 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def _i0(x: torch.Tensor) -> torch.Tensor:
    return torch.special.i0(x)


def kaiser_window(radius: torch.Tensor, support: float, beta: float) -> torch.Tensor:
    """Kaiser window I0(beta sqrt(1 - (r / support)^2)) / I0(beta) at distances `radius` (0 beyond)."""
    t = (radius / support).clamp(max=1.0)
    w = _i0(beta * torch.sqrt(1 - t * t)) / _i0(torch.tensor(beta, dtype=radius.dtype))
    return torch.where(radius <= support + 1e-12, w, torch.zeros_like(w))


def lowpass_filter(numtaps: int, cutoff: float, half_width: float, fs: float, *, radial: bool = False,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A windowed low-pass filter with unit DC gain, laid out at sampling rate `fs`.

    Separable (config T): the sinc 2 f_c sinc(2 f_c t) times a Kaiser window, [numtaps].
    Radial (config R): jinc(2 f_c r) = 2 J1(2 pi f_c r) / (2 pi f_c r), the ideal low-pass with a
    disc-shaped response of radius f_c (Sec. 2.1), times a radially symmetric Kaiser window (the
    official code uses a separable one, which is not radial), [numtaps, numtaps].
    The window's beta follows from the attenuation Kaiser's formula gives for `numtaps` and the
    transition band 2 * `half_width` (App. C).
    """
    if numtaps < 1 or not 0 < cutoff <= fs / 2 or half_width <= 0:
        raise ValueError(f"bad low-pass design: numtaps={numtaps}, cutoff={cutoff}, half_width={half_width}, fs={fs}")
    beta = kaiser_beta(kaiser_attenuation(numtaps, half_width, fs))
    n = torch.arange(numtaps, dtype=torch.float64) - (numtaps - 1) / 2  # tap offsets in samples
    support = max((numtaps - 1) / 2, 1e-9)
    if not radial:
        t = n / fs
        h = 2 * cutoff * torch.sinc(2 * cutoff * t) * kaiser_window(n.abs(), support, beta)
    else:
        r_samples = torch.hypot(n[None, :], n[:, None])  # [K, K]
        r = r_samples / fs
        x = 2 * math.pi * cutoff * r
        safe = torch.where(x > 0, x, torch.ones_like(x))
        jinc = torch.where(x > 0, 2 * torch.special.bessel_j1(safe) / safe, torch.ones_like(x))  # 1 at r = 0
        h = jinc * kaiser_window(r_samples, support, beta)
    return (h / h.sum()).to(dtype)


# ---- resampling ---------------------------------------------------------------------------------
def resampling_matrix(taps: torch.Tensor, n_in: int, first_in: float, n_out: int, first_out: float, *,
                      up: int = 1, down: int = 1) -> torch.Tensor:
    """The banded matrix [n_out, n_in] of a 1-D resampling on the lattice convention above.

    Positions in units of the fine lattice (the one the filter `taps` [K] is laid out on): input
    sample i sits at up*(first_in + i) + (up-1)/2 (upsampling: the input is coarse), output sample
    o at down*(first_out + o) + (down-1)/2 (downsampling: the output is coarse). Entry (o, i) is
    gain * taps[k] where k = pos_o - pos_i + (K-1)/2 when that is an integer tap index, else 0;
    gain = up (the zero insertion). Samples outside the input contribute zero.
    """
    k = taps.shape[-1]
    pos_in = up * (first_in + torch.arange(n_in, dtype=torch.float64)) + (up - 1) / 2
    pos_out = down * (first_out + torch.arange(n_out, dtype=torch.float64)) + (down - 1) / 2
    idx = pos_out[:, None] - pos_in[None, :] + (k - 1) / 2  # [n_out, n_in]
    hit = (idx == idx.round()) & (idx >= 0) & (idx <= k - 1)
    if up > 1 and down > 1:
        raise ValueError("resampling_matrix does one direction at a time")
    m = torch.where(hit, taps.double()[idx.round().clamp(0, k - 1).long()], torch.zeros((), dtype=torch.float64))
    return (m * up).to(taps.dtype)


def resample(x: torch.Tensor, mat_y: torch.Tensor, mat_x: torch.Tensor) -> torch.Tensor:
    """Apply a separable resampling, [N, C, H, W] -> [N, C, H', W'] with mat_y [H', H], mat_x [W', W]:
    two dense matrix products (banded matrices: on CPU a GEMM beats a single-channel convolution)."""
    n, c, h, w = x.shape
    y = (x.reshape(-1, w) @ mat_x.to(x).T).view(n * c, h, -1)  # [N*C, H, W']
    y = mat_y.to(x) @ y  # [N*C, H', W']
    return y.view(n, c, *y.shape[-2:])


def upsample(x: torch.Tensor, taps: torch.Tensor, factor: int, origin: tuple[float, float],
             start: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Zero insertion by `factor`, then the filter `taps` [K] (gain factor per axis).

    x's first element is at coarse lattice index `origin` (y, x); the output holds fine samples
    start .. start + size - 1 per axis (fine index b sits at coarse position (b - (u-1)/2) / u).
    """
    mats = [resampling_matrix(taps, x.shape[2 + a], origin[a], size[a], start[a], up=factor) for a in (0, 1)]
    return resample(x, *mats)


def downsample(x: torch.Tensor, taps: torch.Tensor, factor: int, origin: tuple[float, float],
               start: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Filter with `taps` ([K] separable or [K, K] radial) and keep every `factor`-th sample.

    x's first element sits at fine index `origin` (y, x); the output holds coarse samples
    start .. start + size - 1 (per axis), coarse sample c sitting at fine index d*c + (d-1)/2.
    Samples outside x count as zero. [N, C, H, W] -> [N, C, *size].
    """
    if taps.ndim == 1:
        mats = [resampling_matrix(taps, x.shape[2 + a], origin[a], size[a], start[a], down=factor) for a in (0, 1)]
        return resample(x, *mats)
    # a radial filter is a sum of r separable ones (its SVD; r <= K/2 for a symmetric even filter):
    # both axes of all r terms run as two GEMMs, the second summing the terms in its inner dimension
    us, vs = separable_factors(taps)  # [r, K] each
    r = us.shape[0]
    n, c, h, w = x.shape
    mat_x = torch.cat([resampling_matrix(v, w, origin[1], size[1], start[1], down=factor) for v in vs])  # [r*w', w]
    mat_y = torch.cat([resampling_matrix(u, h, origin[0], size[0], start[0], down=factor) for u in us], 1)  # [h', r*h]
    y = (x.reshape(-1, w) @ mat_x.to(x).T).view(n * c, h, r, size[1])  # [N*C, h, r, w']
    y = mat_y.to(x) @ y.transpose(1, 2).reshape(n * c, r * h, size[1])  # [N*C, h', w']
    return y.view(n, c, *size)


def separable_factors(taps: torch.Tensor, rtol: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D taps [K, K] = sum_r u_r v_r^T: the singular vectors scaled by sqrt(sigma), terms below
    rtol * sigma_0 dropped: an error under -80 dB of the filter, far below its stopband (the jinc
    filters here need 4 terms at 1e-4, 5 to be exact). -> (u [r, K], v [r, K])."""
    u, sv, vh = torch.linalg.svd(taps.double())
    keep = int((sv > rtol * sv[0]).sum())
    scale = sv[:keep].sqrt()
    return (u[:, :keep].T * scale[:, None]).to(taps.dtype), (vh[:keep] * scale[:, None]).to(taps.dtype)


def fine_window(taps: torch.Tensor, factor: int, start: tuple[int, int], size: tuple[int, int]):
    """The fine samples (first index, count per axis) that `downsample` reads for that output."""
    k = taps.shape[-1]
    first = tuple(int(factor * s + (factor - 1) / 2 - (k - 1) / 2) for s in start)
    return first, tuple(factor * (n - 1) + k for n in size)


def filtered_leaky_relu(x: torch.Tensor, up_taps: torch.Tensor, up: int, down_taps: torch.Tensor, down: int,
                        origin: tuple[float, float], start: tuple[int, int], size: tuple[int, int], *,
                        bias: torch.Tensor | None = None, slope: float = 0.2, gain: float = math.sqrt(2),
                        clamp: float | None = None) -> torch.Tensor:
    """The filtered non-linearity (Sec. 2.1, Fig. 2 right): F_sigma(Z) = III_s' (psi * sigma(phi * Z)).

    x [N, C, H, W] sits on a lattice whose first element has index `origin` (y, x); it is upsampled
    by `up` (filter `up_taps`), the bias added, leaky ReLU (gain `gain`, then clamped to +-`clamp`)
    applied at the temporary rate, then low-passed by `down_taps` and decimated by `down` onto the
    output lattice, whose samples start .. start + size - 1 are returned (output stride = down/up
    input strides). Only the temporary samples the down filter reads are computed. -> [N, C, *size].
    """
    first, count = fine_window(down_taps, down, start, size)
    y = upsample(x, up_taps, up, origin, first, count)  # [N, C, h', w'] at the temporary rate
    y = (_fused_bias_act() if use_fast_path(y) else bias_act)(
        y, None if bias is None else bias.to(y), slope, None if clamp is None else clamp / gain)
    return downsample(y, down_taps * gain, down, first, start, size)  # the gain rides on the (linear) filter


def bias_act(y: torch.Tensor, bias: torch.Tensor | None, slope: float, limit: float | None) -> torch.Tensor:
    """[N, C, H, W] + bias [C], leaky ReLU, clamped to +-limit (the gain is applied by the caller)."""
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    y = F.leaky_relu(y, slope)
    return y if limit is None else y.clamp(-limit, limit)


def use_fast_path(x: torch.Tensor) -> bool:
    """The fused CUDA kernel runs for CUDA tensors unless POSGEN_PURE=1."""
    return x.is_cuda and os.environ.get("POSGEN_PURE", "0") != "1"


_COMPILED: dict[str, object] = {}


def _fused_bias_act():
    """`bias_act` compiled into one Triton kernel (dynamic shapes), built on first use."""
    if "bias_act" not in _COMPILED:
        _COMPILED["bias_act"] = torch.compile(bias_act, dynamic=True, fullgraph=True)
    return _COMPILED["bias_act"]


class FilteredLeakyReLU(torch.nn.Module):
    """`filtered_leaky_relu` with its filters designed once from the layer's specification.

    in_rate / out_rate: sampling rates of the input and output lattices; the non-linearity runs at
    tmp_rate = max(in_rate, out_rate) * magnification (m = 2 in the paper, Sec. 2.1). The up filter
    keeps the input band (in_cutoff, in_half_width), the down filter the output band; each has
    filter_size taps per sample of the lower rate (n = 6 in the paper). `radial` makes the down
    filter the jinc-based disc filter (config R).
    """

    def __init__(self, in_rate: float, out_rate: float, in_cutoff: float, in_half_width: float,
                 out_cutoff: float, out_half_width: float, *, filter_size: int = 6, magnification: int = 2,
                 radial: bool = False, clamp: float | None = None) -> None:
        super().__init__()
        tmp_rate = max(in_rate, out_rate) * magnification
        self.up, self.down = round(tmp_rate / in_rate), round(tmp_rate / out_rate)
        if self.up * in_rate != tmp_rate or self.down * out_rate != tmp_rate:
            raise ValueError(f"sampling rates {in_rate} -> {tmp_rate} -> {out_rate} are not integer ratios")
        self.tmp_rate, self.radial, self.clamp = tmp_rate, radial, clamp
        self.register_buffer("up_taps", lowpass_filter(filter_size * self.up, in_cutoff, in_half_width, tmp_rate),
                             persistent=False)
        self.register_buffer("down_taps", lowpass_filter(filter_size * self.down, out_cutoff, out_half_width, tmp_rate,
                                                         radial=radial), persistent=False)

    def forward(self, x: torch.Tensor, origin: tuple[float, float], start: tuple[int, int],
                size: tuple[int, int]) -> torch.Tensor:
        return filtered_leaky_relu(x, self.up_taps, self.up, self.down_taps, self.down, origin, start, size,
                                   clamp=self.clamp)

    def extra_repr(self) -> str:
        return (f"up={self.up}, down={self.down}, taps=({self.up_taps.shape[-1]}, {self.down_taps.shape[-1]}), "
                f"radial={self.radial}")
