"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased estimate of the squared
MMD between real and generated features under the cubic polynomial kernel
k(x, y) = (x·y / D + 1)³, averaged over random subsets (as StyleGAN2-ADA reports it).

For subsets X, Y of size m the unbiased estimator is
    MMD²_u = [Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)] / (m(m-1)) - 2 Σ_{i,j} k(x_i,y_j) / m².
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two samples of equal size m >= 2 under the cubic polynomial kernel."""
    m = len(x)
    if len(y) != m or m < 2:
        raise ValueError(f"need two samples of the same size >= 2, got {len(x)} and {len(y)}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def kid(fake: np.ndarray, real: np.ndarray, *, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict:
    """KID: mean and standard deviation of MMD²_u over `num_subsets` random subsets (without
    replacement within a subset) of min(subset_size, N, M) samples from each set."""
    fake = np.asarray(fake, dtype=np.float64)
    real = np.asarray(real, dtype=np.float64)
    m = min(subset_size, len(fake), len(real))
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(fake[rng.choice(len(fake), m, replace=False)],
                                     real[rng.choice(len(real), m, replace=False)])
                       for _ in range(num_subsets)])
    return {"kid": float(values.mean()), "kid_std": float(values.std()), "kid_subset_size": m,
            "kid_subsets": num_subsets}
