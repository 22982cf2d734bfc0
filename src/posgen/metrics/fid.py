"""Fréchet Inception Distance (Heusel et al. 2017): the Fréchet distance between Gaussians
fitted to the features of real and generated images,

    d² = |μ_r - μ_g|² + Tr(Σ_r + Σ_g - 2 (Σ_r Σ_g)^{1/2}).

Tr((Σ_r Σ_g)^{1/2}) is computed as the sum of square roots of the eigenvalues of the symmetric
PSD matrix Σ_r^{1/2} Σ_g Σ_r^{1/2}, which has the same spectrum as Σ_r Σ_g; this needs two
symmetric eigendecompositions in float64 and never produces the imaginary parts that
`scipy.linalg.sqrtm` of the non-symmetric product can.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D], in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    s1 = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    inner = s1 @ np.asarray(sigma2, dtype=np.float64) @ s1
    tr_sqrt = np.sqrt(np.clip(linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_sqrt, 0.0))


def fid(fake: np.ndarray, real: np.ndarray) -> dict:
    """FID between feature sets [N, D] and [M, D]."""
    value = frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
    return {"fid": value, "num_fake": len(fake), "num_real": len(real)}
