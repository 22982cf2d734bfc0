"""EQ-T / EQ-T-frac / EQ-R on analytic generators with known behaviour, and on posgen models."""
import math

import pytest
import torch
from conftest import tiny_model

from posgen.grid import Grid
from posgen.metrics.equivariance import (
    equivariance,
    lanczos,
    lanczos_sample,
    source_positions,
)
from posgen.models.stylegan2 import Generator
from posgen.sampling import make_sample_fn


def band_limited(max_freq: float, seed: int = 1):
    """A sum of 12 cosines with frequencies below max_freq cycles/pixel, rendered from the grid's
    coordinates: exactly equivariant by construction, and band-limited."""
    g = torch.Generator().manual_seed(seed)
    freqs = (torch.rand(12, 2, generator=g, dtype=torch.float64) * 2 - 1) * max_freq / math.sqrt(2)
    phase = torch.rand(12, generator=g, dtype=torch.float64) * 2 * math.pi

    def sample_fn(n, seed, grid):
        c = grid.coords(dtype=torch.float64)  # [2, H, W] (x, y)
        v = sum(torch.cos(2 * math.pi * (f[0] * c[0] + f[1] * c[1]) + p) for f, p in zip(freqs, phase)) / 6
        return v.expand(n, 3, -1, -1).clone()

    return sample_fn


def ignores_grid(n, seed, grid):
    return band_limited(0.15)(n, seed, Grid(grid.height, grid.width))


def _eq(fn, kind, **kw):
    return equivariance(fn, kind, grid=Grid(48, 64), num_samples=24, batch_size=4, **kw)[kind]


def test_lanczos_kernel_interpolates():
    x = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.5, 3.0, 4.0], dtype=torch.float64)
    assert lanczos(x).tolist()[:6] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert lanczos(x)[7:].tolist() == [0.0, 0.0]
    assert lanczos(torch.tensor([0.5], dtype=torch.float64)).item() == pytest.approx(
        math.sin(math.pi / 2) / (math.pi / 2) * math.sin(math.pi / 6) / (math.pi / 6))


def test_whole_pixel_resampling_is_exact_with_the_valid_region_of_the_move():
    img = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    base = Grid(10, 12)
    values, valid = lanczos_sample(img, *source_positions(base, base.shift(2, -3)))
    # content moved down 2, left 3: output (i, j) shows input (i - 2, j + 3)
    assert torch.equal(values[..., 2:, :9], img[..., :8, 3:])
    assert valid[2:, :9].all() and not valid[:2].any() and not valid[:, 9:].any()


def test_source_positions_of_a_rotation_about_the_centre():
    base = Grid(9, 9)
    ys, xs = source_positions(base, base.rotate(math.pi / 2))
    # content turns 90° counter-clockwise on screen: the output's top-centre pixel shows the
    # reference's centre-right pixel, the centre stays put
    assert (ys[4, 4].item(), xs[4, 4].item()) == pytest.approx((4, 4))
    assert (ys[0, 4].item(), xs[0, 4].item()) == pytest.approx((4, 8))


def test_band_limited_renderer_scores_high_and_grid_ignoring_renderer_low():
    fn = band_limited(0.15)
    scores = {k: _eq(fn, k) for k in ("eqt", "eqt-frac", "eqr")}
    assert scores["eqt"] == math.inf or scores["eqt"] >= 100
    assert scores["eqt-frac"] > 50 and scores["eqr"] > 50
    bad = {k: _eq(ignores_grid, k) for k in ("eqt", "eqt-frac", "eqr")}
    assert max(bad.values()) < 20


def test_higher_frequencies_score_lower_on_fractional_transforms():
    low, high = band_limited(0.1), band_limited(0.4)
    assert _eq(high, "eqt-frac") < _eq(low, "eqt-frac") - 10
    assert _eq(high, "eqr") < _eq(low, "eqr") - 10


def test_equivariance_is_reproducible_and_rejects_unknown_kinds():
    fn = band_limited(0.3)
    assert _eq(fn, "eqr", seed=3) == _eq(fn, "eqr", seed=3) != _eq(fn, "eqr", seed=4)
    with pytest.raises(ValueError, match="unknown equivariance"):
        _eq(fn, "eqs")


def test_posgen_generators_are_measured_through_their_grid():
    """A padding-free MS-PE model is exactly equivariant to shifts by multiples of its coarsest
    stride (up to float error); with zero padding it is not."""
    torch.manual_seed(0)
    errors = {}
    for padding in ("none", "zero"):
        G = Generator(tiny_model(16, input="sinusoid", scale_encoding="sinusoid", padding=padding)).eval()
        fn = make_sample_fn(G, noise_mode="const")
        s = G.coarsest_stride
        base = Grid(16, 16)
        values, valid = lanczos_sample(fn(2, 0, base), *source_positions(base, base.shift(s, 2 * s)))
        errors[padding] = float(((fn(2, 0, base.shift(s, 2 * s)) - values).abs() * valid).max())
        assert math.isfinite(equivariance(fn, "eqr", grid=base, num_samples=2, batch_size=2)["eqr"])
    assert errors["none"] < 1e-4 < errors["zero"]
