"""Class coverage and placement of generated digits: which of the ten digits a model draws, and
where on the canvas it draws them.

Mode collapse on the digits shows up as a few classes taking most samples. The digits feature
network (`posgen.metrics.digits_features`, a 10-class classifier) labels every sample by its
argmax; the result reports

- `fractions`: the fraction of samples per class 0..9,
- `classes_covered`: how many classes hold at least `min_fraction` (5 %) of the samples,
- `entropy` (nats) of the class histogram and `entropy_normalized` = entropy / log 10
  (1 = uniform over the ten digits, 0 = one digit),
- `mean_confidence`: mean softmax probability of the chosen class (blobs score low),
- `class_agreement` (class-conditional generators only, else None): the fraction of samples the
  classifier puts in the class their latent asked for.

Placement says where a model draws, for a spatial-bias study (Choi et al. App. C.1: the digits
live in the top-left region of the canvas). Each pixel's *ink* is its HSV value (max over RGB,
so every hue counts alike) above a small floor that removes a dim background haze:
ink = relu(v - floor) / (1 - floor), v = (max_c x_c + 1) / 2. Per image, the centre of mass of
the ink in canvas-relative coordinates ((0, 0) the top-left corner, (1, 1) the bottom-right,
pixel centres at (j + 0.5) / W), the share of its ink in each quarter of the canvas and in the
data's biased region. The result averages these over the images that have ink.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from tqdm import tqdm

from posgen.errors import MetricError
from posgen.grid import Grid
from posgen.metrics.digits_features import NUM_CLASSES, DigitsFeatureNet, load_digits_extractor

MIN_FRACTION = 0.05
INK_FLOOR = 0.1
QUARTERS = ("top_left", "top_right", "bottom_left", "bottom_right")


def ink(images: torch.Tensor, floor: float = INK_FLOOR) -> torch.Tensor:
    """Ink of images [N, C, H, W] in [-1, 1] (C = 1 or 3): [N, H, W] in [0, 1] (see module doc)."""
    v = (images.float().amax(dim=1) + 1) / 2  # [N, H, W] HSV value
    return ((v - floor) / (1 - floor)).clamp(0, 1)


def placement(images: torch.Tensor, region: tuple[int, int, int, int] | None = None,
              floor: float = INK_FLOOR) -> dict[str, torch.Tensor]:
    """Per-image placement of the ink of images [N, C, H, W]:
    {"mass" [N], "center" [N, 2] (y, x) canvas-relative, "quarters" [N, 4] (QUARTERS order),
    "region" [N] (only with a region (top, left, height, width) in pixels)}. Images without
    ink get centre (0.5, 0.5) and zero shares; `mass` tells them apart."""
    a = ink(images, floor)  # [N, H, W]
    n, h, w = a.shape
    mass = a.sum(dim=(1, 2))  # [N]
    safe = mass.clamp_min(1e-12)
    ys = (torch.arange(h, dtype=a.dtype) + 0.5) / h  # pixel centres, canvas-relative
    xs = (torch.arange(w, dtype=a.dtype) + 0.5) / w
    cy = (a.sum(2) * ys).sum(1) / safe
    cx = (a.sum(1) * xs).sum(1) / safe
    empty = mass <= 0
    center = torch.stack([cy.masked_fill(empty, 0.5), cx.masked_fill(empty, 0.5)], dim=1)  # [N, 2]
    # quarters split an odd side at the middle pixel's centre: that pixel counts half on each side
    wy = ((ys < 0.5).to(a.dtype) + 0.5 * (ys == 0.5).to(a.dtype))  # [H] weight of the top half
    wx = ((xs < 0.5).to(a.dtype) + 0.5 * (xs == 0.5).to(a.dtype))  # [W] weight of the left half
    rows = torch.stack([wy, 1 - wy])  # [2, H] top, bottom
    cols = torch.stack([wx, 1 - wx])  # [2, W] left, right
    q = torch.einsum("nhw,ah,bw->nab", a, rows, cols).reshape(n, 4) / safe[:, None]  # [N, 4]
    out = {"mass": mass, "center": center, "quarters": q}
    if region is not None:
        top, left, rh, rw = region
        if rh < 1 or rw < 1:
            raise MetricError(f"placement region {region} (top, left, height, width) is empty")
        inside = a[:, max(top, 0):max(top + rh, 0), max(left, 0):max(left + rw, 0)].sum(dim=(1, 2))
        out["region"] = inside / safe
    return out


class CoverageCounter:
    """Accumulates class counts and placement over batches; `result()` is the JSON-able summary."""

    def __init__(self, classifier: DigitsFeatureNet, region: tuple[int, int, int, int] | None = None,
                 min_fraction: float = MIN_FRACTION, floor: float = INK_FLOOR) -> None:
        if not 0.0 < min_fraction <= 1.0:
            raise MetricError(f"coverage min_fraction must be in (0, 1], got {min_fraction}")
        self.classifier, self.region, self.min_fraction, self.floor = classifier, region, min_fraction, floor
        self.counts = torch.zeros(NUM_CLASSES, dtype=torch.float64)
        self.confidence = 0.0
        self.n = 0
        self.inked = 0
        self.center = torch.zeros(2, dtype=torch.float64)
        self.quarters = torch.zeros(4, dtype=torch.float64)
        self.in_region = 0.0
        self.asked = 0
        self.agreed = 0

    @torch.no_grad()
    def add(self, images: torch.Tensor, asked: torch.Tensor | None = None) -> torch.Tensor:
        """Count a batch of images [N, C, H, W] in [-1, 1] (and, for a conditional generator, the classes
        `asked` [N] of their latents); returns its predicted labels [N]."""
        device = next(self.classifier.parameters()).device
        probs = self.classifier.logits(images.to(device)).float().softmax(dim=1).cpu()  # [N, 10]
        conf, labels = probs.max(dim=1)
        self.counts += torch.bincount(labels, minlength=NUM_CLASSES).double()
        self.confidence += conf.double().sum().item()
        self.n += len(images)
        if asked is not None:
            self.asked += len(images)
            self.agreed += int((labels == asked.cpu()).sum())
        p = placement(images.cpu(), self.region, self.floor)
        has = p["mass"] > 0
        self.inked += int(has.sum())
        self.center += p["center"][has].double().sum(0)
        self.quarters += p["quarters"][has].double().sum(0)
        if "region" in p:
            self.in_region += p["region"][has].double().sum().item()
        return labels

    def result(self) -> dict:
        if self.n == 0:
            raise MetricError("coverage of no images")
        frac = self.counts / self.n
        nz = frac[frac > 0]
        entropy = float(-(nz * nz.log()).sum())
        k = max(self.inked, 1)
        cy, cx = (self.center / k).tolist()
        out = {
            "num_samples": self.n,
            "fractions": [round(float(f), 6) for f in frac],
            "classes_covered": int((frac >= self.min_fraction - 1e-12).sum()),
            "min_fraction": self.min_fraction,
            "entropy": entropy,
            "entropy_normalized": entropy / math.log(NUM_CLASSES),
            "mean_confidence": self.confidence / self.n,
            "class_agreement": self.agreed / self.asked if self.asked else None,
            "placement": {
                "center_y": cy, "center_x": cx,  # canvas-relative, (0, 0) = top-left corner
                "quarters": dict(zip(QUARTERS, (self.quarters / k).tolist())),
                "ink_in_region": self.in_region / k if self.region is not None else None,
                "region": list(self.region) if self.region is not None else None,
                "images_with_ink": self.inked,
                "ink_floor": self.floor,
            },
        }
        return out


def coverage_of_batches(batches: Iterable[torch.Tensor], classifier: DigitsFeatureNet | None = None,
                        region: tuple[int, int, int, int] | None = None, min_fraction: float = MIN_FRACTION) -> dict:
    """Coverage (module doc) of image batches [N, C, H, W] in [-1, 1], e.g. real data."""
    counter = CoverageCounter(classifier if classifier is not None else load_digits_extractor(), region, min_fraction)
    for images in batches:
        counter.add(images)
    return counter.result()


def generated_coverage(region: tuple[int, int, int, int] | None = None, device: str = "cpu",
                       min_fraction: float = MIN_FRACTION,
                       seed_classes: Callable[[list[int]], torch.Tensor] | None = None) -> "SeededCoverage":
    """A counter for generated images fed with their seeds (`evaluate` feeds it the images it renders
    for the distribution metrics, so coverage costs no second rendering)."""
    return SeededCoverage(CoverageCounter(load_digits_extractor(device=device), region, min_fraction), seed_classes)


class SeededCoverage:
    """CoverageCounter of generated images whose seeds are known: `add(images, first_seed)` counts a batch
    of seeds first_seed, first_seed + 1, ... (and, for a class-conditional generator, whether each drew the
    class its seed asked for)."""

    def __init__(self, counter: CoverageCounter, seed_classes: Callable[[list[int]], torch.Tensor] | None) -> None:
        self.counter, self.seed_classes = counter, seed_classes

    def add(self, images: torch.Tensor, first_seed: int) -> None:
        seeds = list(range(first_seed, first_seed + len(images)))
        self.counter.add(images, self.seed_classes(seeds) if self.seed_classes else None)

    def result(self) -> dict:
        return self.counter.result()


def coverage(sample_fn, grid: Grid, num_samples: int, batch_size: int = 64, seed: int = 0,
             region: tuple[int, int, int, int] | None = None, device: str = "cpu",
             min_fraction: float = MIN_FRACTION, progress: bool = True,
             seed_classes: Callable[[list[int]], torch.Tensor] | None = None) -> dict:
    """Coverage (module doc) of `num_samples` images of `sample_fn(batch_size, seed, grid)` (seeds
    seed .. seed + num_samples - 1), quantised to 8 bits like real images; `region` is the data's
    biased region in output pixels of `grid` (top, left, height, width); `seed_classes(seeds)`: the
    classes a class-conditional generator draws for those seeds (gives `class_agreement`)."""
    from posgen.metrics.evaluate import generated_batches  # evaluate imports the METRICS table, which imports this

    if num_samples < 1:
        raise MetricError(f"coverage needs at least one sample, got {num_samples}")
    counter = generated_coverage(region, device, min_fraction, seed_classes)
    with tqdm(total=num_samples, desc="coverage", unit="img", disable=not progress, leave=False) as bar:
        for b0, images in zip(range(0, num_samples, batch_size),
                              generated_batches(sample_fn, grid, num_samples, batch_size, seed)):
            counter.add(images, seed + b0)
            bar.update(len(images))
    return counter.result()
