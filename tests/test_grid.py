import math

import pytest
import torch

from posgen.grid import Grid, PointGrid
from posgen.ops import upsample2x


def test_default_coords_put_pixel_i_j_at_x_j_y_i_on_non_square_grid():
    c = Grid(3, 5).coords()
    assert c.shape == (2, 3, 5)
    assert torch.equal(c[0], torch.arange(5.0).expand(3, 5))  # x varies along columns
    assert torch.equal(c[1], torch.arange(3.0)[:, None].expand(3, 5))  # y along rows


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_shift_of_k_pixels_is_k_over_f_at_each_scale(stride):
    g = Grid(32, 48)
    d = g.shift(3, -5.5).scale_coords(stride) - g.scale_coords(stride)
    assert torch.allclose(d[0], torch.full_like(d[0], 5.5 / stride))
    assert torch.allclose(d[1], torch.full_like(d[1], -3 / stride))


def test_scale_coords_default_is_lattice_index_with_margin():
    c = Grid(16, 8).scale_coords(4, margin=2)
    assert c.shape == (2, 4 + 4, 2 + 4)
    assert c[0, 0, 0] == -2 and c[1, 0, 0] == -2 and c[0, 0, -1] == 3 and c[1, -1, 0] == 5


def test_shift_returns_new_grid_and_leaves_original_untouched():
    g = Grid(8, 8)
    before = g.coords().clone()
    g.shift(2, 2)
    g.roll(1, 1)
    assert torch.equal(g.coords(), before)
    assert g.period is None


def test_roll_wraps_coordinates_modulo_the_canvas_at_every_scale():
    g = Grid(8, 16).roll(3, 5)
    c = g.coords()
    assert torch.equal(c[0, 0], torch.tensor([11.0, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    assert torch.equal(c[1, :, 0], torch.tensor([5.0, 6, 7, 0, 1, 2, 3, 4]))
    coarse = g.scale_coords(4)  # period 2 x 4 at stride 4
    assert coarse.min() >= 0 and coarse[0].max() < 4 and coarse[1].max() < 2


def test_zoom_samples_the_same_extent_densely_with_pixel_edges_aligned():
    g = Grid(4, 6).zoom(2)
    assert g.size == (8, 12)
    assert g.extent() == pytest.approx((4.0, 6.0))
    x = g.coords()[0, 0]
    assert torch.allclose(x, (torch.arange(12.0) + 0.5) / 2 - 0.5)
    # mean position of the fine pixels inside each coarse pixel is the coarse pixel centre
    assert torch.allclose(x.view(6, 2).mean(1), torch.arange(6.0))
    assert Grid(4, 6).zoom(1.5, size=(5, 7)).size == (5, 7)


def test_resize_expands_the_canvas_with_the_same_spacing():
    g = Grid(4, 4).resize(6, 10)
    assert torch.equal(g.coords()[0, 0], torch.arange(10.0))


def test_rotate_quarter_turn_and_full_turn():
    g = Grid(5, 5)
    assert torch.allclose(g.rotate(2 * math.pi).coords(), g.coords(), atol=1e-5)
    r = g.rotate(math.pi / 2).coords()
    # centre stays, and the pixel right of centre shows what was below the centre (counter-clockwise)
    assert torch.allclose(r[:, 2, 2], torch.tensor([2.0, 2.0]), atol=1e-6)
    assert torch.allclose(r[:, 2, 3], torch.tensor([2.0, 3.0]), atol=1e-6)


def test_coarse_coordinates_upsampled_bilinearly_match_fine_coordinates():
    """The half-pixel convention of Grid.scale_coords is that of upsample2x (align_corners=False):
    a feature pixel at stride f sits at output position f*u + (f-1)/2."""
    g = Grid(32, 24).shift(1.25, -3)

    def frame(f):
        return g.scale_coords(f)[None] * f + (f - 1) / 2

    up = upsample2x(frame(4))
    assert torch.allclose(up[..., 1:-1, 1:-1], frame(2)[..., 1:-1, 1:-1], atol=1e-5)
    assert not torch.allclose(up, frame(2) + 0.5, atol=1e-3)  # a half-pixel slip would show


def test_invalid_grids_raise():
    with pytest.raises(ValueError, match="positive"):
        Grid(0, 4)
    with pytest.raises(ValueError, match="zoom"):
        Grid(4, 4).zoom(0)


def test_point_grid_from_lattice():
    p = PointGrid.from_grid(Grid(2, 3))
    assert p.coords().shape == (2, 6)
    assert torch.equal(p.coords()[:, 4], torch.tensor([1.0, 1.0]))


def test_crop_is_a_window_of_the_lattice_with_the_same_coordinates():
    g = Grid(12, 20).rotate(0.3).roll(2, 3.5)
    window = g.crop(4, 7, 5, 9)
    assert window.size == (5, 9) and window.period == g.period
    assert torch.allclose(window.coords(), g.coords()[:, 4:9, 7:16], atol=1e-5)
