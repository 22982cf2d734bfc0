"""Known-answer tests of the distribution metrics' statistics (FID, KID, P&R, SWD, spectra)."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from posgen.metrics.fid import fid, frechet_distance, gaussian_stats
from posgen.metrics.kid import kid, mmd2_unbiased, polynomial_kernel
from posgen.metrics.precision_recall import precision_recall
from posgen.metrics.spectrum import power_spectra, spectrum
from posgen.metrics.swd import _pyr_up, laplacian_pyramid, swd, swd_descriptors


def _random_psd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()  # 1 + 6.25 + 4 + 1 + 0
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_the_sqrtm_formula_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    s1, s2 = _random_psd(rng, 12), _random_psd(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    # and it is symmetric although the formula is not written symmetrically
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    x = np.random.default_rng(1).normal(size=(600, 64)).astype(np.float32)
    assert abs(fid(x, x)["fid"]) < 1e-6
    shifted = fid(x + 0.5, x)["fid"]
    assert shifted == pytest.approx(64 * 0.25, rel=1e-4)  # only the means differ: |Δμ|² = 64 · 0.5²


def test_gaussian_stats_rejects_a_single_sample():
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(np.zeros((1, 3)))


def test_kid_estimator_is_unbiased_on_finite_populations():
    """Samples drawn i.i.d. from two finite sets: the mean of MMD²_u over many draws equals the
    population MMD² (a V-statistic over the whole sets, diagonal included)."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 4)), rng.normal(0.4, 1.2, size=(6, 4))
    population = polynomial_kernel(a, a).mean() + polynomial_kernel(b, b).mean() - 2 * polynomial_kernel(a, b).mean()
    draws = np.array([mmd2_unbiased(a[rng.integers(0, 6, 8)], b[rng.integers(0, 6, 8)]) for _ in range(6000)])
    stderr = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean() - population) < 4 * stderr
    # the biased estimator (diagonal kept) is off by far more than that
    biased = np.mean([polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean()
                      for x, y in ((a[rng.integers(0, 6, 8)], b[rng.integers(0, 6, 8)]) for _ in range(2000))])
    assert biased - population > 10 * stderr


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same = kid(x, y, num_subsets=20, subset_size=200)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3
    far = kid(x + 1.0, y, num_subsets=20, subset_size=200)
    assert far["kid"] > 10 * same["kid_std"] + abs(same["kid"])
    assert far["kid_subset_size"] == 200


def test_precision_recall_on_constructed_manifolds():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(300, 8))
    same = precision_recall(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    disjoint = precision_recall(real + 100.0, real)
    assert disjoint["precision"] == 0.0 and disjoint["recall"] == 0.0
    # a generator covering only half of the real cloud: precise but with low recall
    plane = rng.normal(size=(2000, 2))
    half = plane[plane[:, 0] > 0]
    partial = precision_recall(half, plane)
    assert partial["precision"] == 1.0 and 0.45 < partial["recall"] < 0.6


def test_laplacian_pyramid_reconstructs_the_image():
    x = torch.randn(2, 3, 64, 48)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-2:] for lv in levels] == [(64, 48), (32, 24), (16, 12)]
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        rec = band + _pyr_up(rec, band.shape[-2:])
    assert torch.allclose(rec, x, atol=1e-5)


def test_swd_is_zero_for_identical_sets_and_orders_distances():
    gen = torch.Generator().manual_seed(0)
    smooth = lambda n: torch.nn.functional.avg_pool2d(torch.randn(n, 3, 36, 36, generator=gen), 5, 1)
    a = swd_descriptors(smooth(256), patches_per_image=16, seed=1)
    assert [lv.shape for lv in a] == [(256 * 16, 3, 7, 7), (256 * 16, 3, 7, 7)]
    assert swd(a, a)["swd"] == 0.0
    b = swd_descriptors(smooth(256), patches_per_image=16, seed=2)  # same distribution, other samples: the sampling floor
    noise = swd_descriptors(torch.randn(256, 3, 32, 32, generator=gen), patches_per_image=16, seed=3)  # another distribution
    near, far = swd(a, b), swd(a, noise)
    assert 0 < near["swd_levels"][0] < 0.7 * far["swd_levels"][0]
    assert near["swd"] < far["swd"] and near["swd_descriptors"] == 256 * 16


def test_power_spectrum_of_a_sinusoid_peaks_at_its_frequency():
    n = 64
    x = torch.arange(n, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * 8 / n * x)[None, :].expand(n, n)  # 8 cycles across: f = 1/8
    spec = power_spectra(wave.expand(1, 3, n, n).float())[0]
    assert spec.shape == (n // 2 + 1,)
    assert int(np.argmax(spec)) == 8
    white = power_spectra(torch.randn(64, 3, n, n, generator=torch.Generator().manual_seed(0)).clamp(-1, 1))
    mean = white.mean(axis=0)[2:]
    assert mean.max() / mean.min() < 1.6  # flat


def test_spectrum_distance_zero_for_identical_and_positive_otherwise(tmp_path):
    imgs = torch.rand(8, 3, 32, 32) * 2 - 1
    s = power_spectra(imgs)
    same = spectrum(s, s, plot=tmp_path / "s.png")
    assert same["spectral_distance_db"] == 0.0 and (tmp_path / "s.png").stat().st_size > 1000
    blurred = power_spectra(torch.nn.functional.avg_pool2d(imgs, 3, 1, 1))
    assert spectrum(blurred, s)["spectrum_high_freq_db"] < -3  # blur removes high frequencies
