"""Metrics, each in its own module, and the METRICS table the CLI reads.

Two kinds share one table:
- distribution metrics compare a per-image statistic of generated images with the same
  statistic of real images ("features" of a feature network, SWD patch "descriptors", power
  "spectra"); one pass over the images feeds every metric that reads the same statistic;
- generator metrics call `sample_fn(batch_size, seed, grid) -> images in [-1, 1]` on
  transformed grids (equivariance, shift consistency) and need no real data.
`posgen.metrics.evaluate.evaluate` runs any mix of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from posgen.metrics.coverage import coverage, generated_coverage
from posgen.metrics.equivariance import equivariance
from posgen.errors import MetricError
from posgen.metrics.fid import fid
from posgen.metrics.kid import kid
from posgen.metrics.precision_recall import precision_recall
from posgen.metrics.shift_consistency import shift_consistency
from posgen.metrics.spectrum import spectrum
from posgen.metrics.swd import swd

Statistic = Literal["features", "descriptors", "spectra"]


@dataclass(frozen=True)
class Metric:
    summary: str
    statistic: Statistic | None  # what a distribution metric compares; None for generator metrics
    compute: Callable[..., dict]  # (fake, real, opts) or (sample_fn, opts) -> JSON-able dict
    # a generator metric that can count the images the distribution metrics render instead of rendering its
    # own: (opts) -> a counter with add(images, first_seed) and result()
    counter: Callable[..., object] | None = None


METRICS: dict[str, Metric] = {
    "fid": Metric("Fréchet distance of feature Gaussians", "features",
                  lambda fake, real, o: fid(fake, real)),
    "kid": Metric("kernel distance (unbiased MMD², cubic kernel)", "features",
                  lambda fake, real, o: kid(fake, real, seed=o.seed)),
    "pr": Metric("improved precision and recall, k = 3", "features",
                 lambda fake, real, o: precision_recall(fake, real, k=3)),
    "swd": Metric("sliced Wasserstein distance of Laplacian-pyramid patches (x 10^3)", "descriptors",
                  lambda fake, real, o: swd(fake, real, seed=o.seed, progress=o.progress)),
    "spectrum": Metric("azimuthal power spectrum vs real, distance in dB", "spectra",
                       lambda fake, real, o: spectrum(fake, real, plot=o.plot_path("spectrum"))),
    "eqt": Metric("EQ-T: PSNR under whole-pixel translations (dB)", None,
                  lambda sample_fn, o: equivariance(sample_fn, "eqt", **o.equivariance_args())),
    "eqt-frac": Metric("EQ-T: PSNR under fractional translations (dB)", None,
                       lambda sample_fn, o: equivariance(sample_fn, "eqt-frac", **o.equivariance_args())),
    "eqr": Metric("EQ-R: PSNR under rotations (dB)", None,
                  lambda sample_fn, o: equivariance(sample_fn, "eqr", **o.equivariance_args())),
    "shift-consistency": Metric("similarity of the content patch under grid shifts (Choi App. C.4)", None,
                                lambda sample_fn, o: shift_consistency(sample_fn, **o.shift_consistency_args())),
    "coverage": Metric("digit classes drawn (digits classifier) and where the ink sits on the canvas", None,
                       lambda sample_fn, o: coverage(sample_fn, **o.coverage_args()),
                       counter=lambda o: generated_coverage(**o.generated_coverage_args())),
}

__all__ = ["METRICS", "Metric", "MetricError", "coverage", "equivariance", "fid", "kid", "precision_recall",
           "shift_consistency", "spectrum", "swd"]
