"""Azimuthally integrated power spectra of generated vs real images (Anokhin et al., CIPS
Fig. 7; Durall et al. 2020).

Each image is converted to luma, its mean removed and a 2-D Hann window applied (so the
canvas border does not leak into every frequency); the power |FFT|² is averaged over rings
of equal radial frequency f = sqrt(f_y² + f_x²) in cycles per pixel, binned in steps of
1/min(H, W) from 0 to 1/2 (Nyquist). The scalar `spectral_distance_db` is the mean absolute
difference of the two mean spectra in decibels over the non-DC bins.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from posgen.metrics.shift_consistency import grayscale


def radial_bins(height: int, width: int) -> tuple[torch.Tensor, int]:
    """Bin index of every FFT coefficient [H, W] (unshifted layout) and the number of bins."""
    n = min(height, width)
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(width, dtype=torch.float64)[None, :]
    radius = torch.sqrt(fy**2 + fx**2) * n  # in units of 1/n cycles per pixel
    return radius.round().long().clamp(max=n // 2 + 1), n // 2 + 1


def power_spectra(images: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [-1, 1] -> azimuthal mean power per bin [N, min(H, W)//2 + 1];
    bins beyond Nyquist (the corners of the spectrum) are dropped."""
    gray = grayscale(images.float()).double()  # [N, H, W]
    n_img, h, w = gray.shape
    window = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] * \
        torch.hann_window(w, periodic=False, dtype=torch.float64)[None, :]
    x = (gray - gray.mean(dim=(1, 2), keepdim=True)) * window
    power = torch.fft.fft2(x).abs().pow(2) / window.pow(2).sum()  # [N, H, W]
    bins, num = radial_bins(h, w)
    flat = bins.flatten()
    sums = torch.zeros(n_img, num + 1, dtype=torch.float64).index_add_(1, flat, power.flatten(1))
    counts = torch.zeros(num + 1, dtype=torch.float64).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float64))
    return (sums[:, :num] / counts[:num]).numpy()


def spectrum(fake: np.ndarray, real: np.ndarray, *, plot: str | Path | None = None) -> dict:
    """Compare mean spectra from `power_spectra` of generated and real images."""
    if fake.shape[1] != real.shape[1]:
        raise ValueError("generated and real spectra have different lengths (different image sizes?)")
    f, r = fake.mean(axis=0), real.mean(axis=0)
    n_bins = len(f)
    freqs = [k / (2 * (n_bins - 1)) for k in range(n_bins)]
    eps = 1e-20
    db = 10 * np.log10((f[1:] + eps) / (r[1:] + eps))
    result = {"spectral_distance_db": float(np.abs(db).mean()),
              "spectrum_high_freq_db": float(db[len(db) // 2:].mean()),
              "frequencies": freqs, "spectrum_fake": f.tolist(), "spectrum_real": r.tolist()}
    if plot is not None:
        plot_spectra(freqs, f, r, plot, result["spectral_distance_db"])
        result["plot"] = str(plot)
    return result


def plot_spectra(freqs: list[float], fake: np.ndarray, real: np.ndarray, path: str | Path, distance: float) -> None:
    from posgen.viz import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.semilogy(freqs[1:], real[1:], label="real")
    ax.semilogy(freqs[1:], fake[1:], label="generated")
    ax.set_xlabel("spatial frequency (cycles / pixel)")
    ax.set_ylabel("power")
    ax.set_title(f"azimuthal power spectrum, distance {distance:.2f} dB")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["plot_spectra", "power_spectra", "radial_bins", "spectrum"]
