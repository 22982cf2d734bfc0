import json

import pytest
import torch

from posgen.grid import Grid
from posgen.metrics.shift_consistency import (
    grayscale,
    patch_similarity,
    shift_consistency,
    unshift,
)


def test_patch_similarity_eq_c():
    a = torch.tensor([[[1.0, 0.0], [0.5, 0.2]]])
    b = torch.tensor([[[0.5, 0.5], [0.5, 0.0]]])
    # sum min = 0.5 + 0 + 0.5 + 0 = 1.0 ; sum max = 1 + 0.5 + 0.5 + 0.2 = 2.2
    assert patch_similarity(a, b).item() == pytest.approx(1.0 / 2.2)
    assert patch_similarity(a, a).item() == pytest.approx(1.0)
    assert patch_similarity(a, torch.zeros_like(a)).item() == 0.0


def test_grayscale_uses_luma_weights():
    img = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)  # pure red
    assert grayscale(img).item() == pytest.approx(0.299)


def test_unshift_fractional_is_linear_interpolation():
    x = torch.arange(8.0).view(1, 8)
    assert torch.equal(unshift(x, 2, dim=1)[0, :3], torch.tensor([2.0, 3.0, 4.0]))
    assert torch.allclose(unshift(x, 1.5, dim=1)[0, :3], torch.tensor([1.5, 2.5, 3.5]))


def _square_sample_fn(equivariant: bool):
    """Draws a bright 6x6 square at frame coords [2, 8): moves with the grid if equivariant."""

    def sample_fn(n, seed, grid):
        c = grid.coords() if equivariant else Grid(grid.height, grid.width).coords()
        inside = ((c[0] >= 2) & (c[0] < 8) & (c[1] >= 2) & (c[1] < 8)).float()
        return (inside * 2 - 1).expand(n, 3, -1, -1)

    return sample_fn


def test_shift_consistency_is_one_for_an_equivariant_renderer_and_low_for_a_biased_one(tmp_path):
    fn = shift_consistency
    good = fn(_square_sample_fn(True), grid=Grid(16, 16), region=(0, 0, 10, 10), max_shift=6, step=1,
              num_samples=2, plot=tmp_path / "curve.png")
    assert good["mean"] == pytest.approx(1.0)
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert len(good["curves"]["x"]) == len(good["shifts"]) == 7
    bad = fn(_square_sample_fn(False), grid=Grid(16, 16), region=(0, 0, 10, 10), max_shift=6, step=1, num_samples=2)
    assert bad["curves"]["x"][0] == pytest.approx(1.0)
    assert bad["mean"] < 0.6
    json.dumps(good)


def test_shift_consistency_fractional_shift_of_a_smooth_renderer():
    def smooth(n, seed, grid):
        c = grid.coords()
        r2 = (c[0] - 5) ** 2 + (c[1] - 5) ** 2
        return (2 * torch.exp(-r2 / 8) - 1).expand(n, 3, -1, -1)

    res = shift_consistency(smooth, grid=Grid(16, 16), region=(0, 0, 10, 10), max_shift=3, step=0.5,
                                       num_samples=1)
    assert res["shifts"] == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert min(res["curves"]["x"]) > 0.9  # interpolation blurs a little, nothing more
