"""Class coverage and placement (posgen.metrics.coverage) on real biased digits, on a collapsed
set and on digits moved to another corner."""
from __future__ import annotations

import math

import pytest
import torch

from posgen.data.digits import BiasedDigitsConfig, make_biased_digits
from posgen.grid import Grid
from posgen.metrics import METRICS
from posgen.metrics.coverage import CoverageCounter, coverage, coverage_of_batches, ink, placement
from posgen.metrics.digits_features import load_digits_extractor
from posgen.metrics.evaluate import EvalOptions, evaluate

REGION = BiasedDigitsConfig().region  # (0, 0, 16, 16) of the 32x32 canvas


@pytest.fixture(scope="module")
def net():
    return load_digits_extractor()


@pytest.fixture(scope="module")
def digits():
    images, labels = make_biased_digits()
    return images.float() / 127.5 - 1, labels  # [1797, 3, 32, 32] in [-1, 1]


def _batches(x: torch.Tensor, size: int = 256):
    return (x[i:i + size] for i in range(0, len(x), size))


def test_real_digits_cover_all_classes_in_the_corner(net, digits):
    images, labels = digits
    r = coverage_of_batches(_batches(images), net, region=REGION)
    assert r["num_samples"] == len(images)
    assert r["classes_covered"] == 10
    assert min(r["fractions"]) > 0.08  # each class is ~10 % of sklearn's digits
    assert abs(sum(r["fractions"]) - 1) < 1e-5
    assert r["entropy"] > math.log(10) - 0.01 and r["entropy_normalized"] > 0.995
    assert r["mean_confidence"] > 0.9
    pl = r["placement"]
    assert pl["ink_in_region"] > 0.99 and pl["quarters"]["top_left"] > 0.99
    assert pl["center_y"] < 0.5 * 0.5 + 0.05 and pl["center_x"] < 0.5 * 0.5 + 0.05  # inside the top-left quarter
    assert pl["images_with_ink"] == len(images)


def test_collapsed_set_covers_one_class(net, digits):
    images, labels = digits
    one = images[(labels == 3).nonzero()[0, 0]]
    r = coverage_of_batches([one.expand(500, -1, -1, -1)], net, region=REGION)
    assert r["classes_covered"] == 1
    assert r["fractions"][3] == 1.0
    assert r["entropy"] == 0.0 and r["entropy_normalized"] == 0.0


def test_two_digits_half_and_half(net, digits):
    images, labels = digits
    a, b = images[labels == 1][:150], images[labels == 7][:150]
    counter = CoverageCounter(net, REGION)
    pred = torch.cat([counter.add(a), counter.add(b)])
    r = counter.result()
    acc = (pred == torch.cat([torch.full((150,), 1), torch.full((150,), 7)])).float().mean()
    assert r["classes_covered"] == 2
    assert abs(r["entropy"] + sum(f * math.log(f) for f in r["fractions"] if f > 0)) < 1e-5
    assert acc > 0.95 and abs(r["entropy"] - math.log(2)) < 0.05


def test_placement_detects_a_moved_digit(net, digits):
    images, _ = digits
    moved = torch.roll(images[:300], shifts=(16, 16), dims=(2, 3))  # the top-left quarter -> bottom-right
    r = coverage_of_batches([moved], net, region=REGION)
    pl = r["placement"]
    assert pl["ink_in_region"] < 1e-6
    assert pl["quarters"]["bottom_right"] > 0.99
    home = coverage_of_batches([images[:300]], net, region=REGION)["placement"]
    assert abs(pl["center_y"] - home["center_y"] - 0.5) < 1e-5 and abs(pl["center_x"] - home["center_x"] - 0.5) < 1e-5


def test_placement_golden_values():
    x = -torch.ones(2, 3, 4, 6)
    x[0, 1, 1, 2] = 1.0  # one full-ink green pixel at row 1, column 2
    p = placement(x, region=(0, 0, 2, 3))
    assert torch.allclose(p["center"][0], torch.tensor([1.5 / 4, 2.5 / 6]))
    assert torch.allclose(p["quarters"][0], torch.tensor([1.0, 0, 0, 0]))
    assert p["region"][0] == 1.0 and p["mass"][0] == 1.0
    assert p["mass"][1] == 0 and torch.equal(p["center"][1], torch.tensor([0.5, 0.5]))  # no ink
    dim = torch.full((1, 1, 2, 2), -1 + 2 * 0.05)  # a haze under the floor is no ink
    assert ink(dim).sum() == 0
    odd = -torch.ones(1, 1, 3, 3)
    odd[0, 0, 1, 1] = 1.0  # the centre pixel of an odd canvas counts a quarter in each quarter
    assert torch.allclose(placement(odd)["quarters"][0], torch.full((4,), 0.25))


def test_coverage_metric_through_evaluate(digits):
    images, _ = digits
    grid = Grid(32, 32)

    def sample_fn(n, seed, g):
        return images[seed:seed + n]  # "generated" = the real digits, seeds index them

    assert METRICS["coverage"].statistic is None
    opts = EvalOptions(grid=grid, num_samples=400, batch_size=100, region=REGION, progress=False)
    r = evaluate(sample_fn, ["coverage"], opts)["coverage"]
    direct = coverage(sample_fn, grid, 400, batch_size=100, region=REGION, progress=False)
    assert r == direct and r["num_samples"] == 400 and r["classes_covered"] == 10
    assert r["class_agreement"] is None  # an unconditional sample function


def test_coverage_counts_the_images_the_distribution_metrics_render(digits, tmp_path):
    from posgen.data import BiasedDigitsConfig, DataConfig

    images, labels = digits
    grid = Grid(32, 32)
    rendered = []

    def sample_fn(n, seed, g):
        rendered.extend(range(seed, seed + n))
        return images[seed:seed + n]

    opts = EvalOptions(grid=grid, num_samples=300, batch_size=128, seed=7, region=REGION, progress=False,
                       feature_extractor="digits", cache_dir=tmp_path, seed_classes=lambda seeds: labels[seeds])
    data = DataConfig(source="digits", digits=BiasedDigitsConfig())
    both = evaluate(sample_fn, ["fid", "coverage"], opts, data=data, training_size=(32, 32))
    assert sorted(rendered) == list(range(7, 307))  # each seed rendered once, for FID and coverage together
    rendered.clear()
    alone = evaluate(sample_fn, ["coverage"], opts)["coverage"]
    assert both["coverage"] == alone and alone["num_samples"] == 300 and alone["class_agreement"] > 0.97
    assert sorted(rendered) == list(range(7, 307))


def test_class_agreement_counts_samples_drawn_in_the_class_their_seed_asked_for(digits):
    images, labels = digits
    grid = Grid(32, 32)

    def sample_fn(n, seed, g):
        return images[seed:seed + n]

    def run(asked):
        opts = EvalOptions(grid=grid, num_samples=400, batch_size=128, progress=False, seed_classes=asked)
        return evaluate(sample_fn, ["coverage"], opts)["coverage"]["class_agreement"]

    assert run(lambda seeds: labels[seeds]) > 0.97  # the classifier reads the real digits' own labels
    assert run(lambda seeds: (labels[seeds] + 1) % 10) < 0.03  # every sample one class off
    half = run(lambda seeds: torch.where(torch.tensor(seeds) < 200, labels[seeds], (labels[seeds] + 1) % 10))
    assert 0.45 < half < 0.52
