import pytest
import torch

from conftest import VARIANTS, tiny_model
from posgen.grid import Grid
from posgen.models import Discriminator, DiscriminatorConfig
from posgen.models.stylegan2 import Generator
from posgen.models.stylegan2 import padding_free_margins
from posgen.ops import lattice_noise


def _grids(res):
    g = Grid(res, res)
    return {
        "default": g, "shift": g.shift(3, -2), "fractional": g.shift(0.5, 1.25), "roll": g.roll(5, 7.5),
        "zoom": g.zoom(1.5), "non-square": Grid(res, 3 * res), "odd-size": Grid(13, 21),
        "larger": g.center_crop_resize(2 * res, 2 * res), "rotated": g.rotate(0.3),
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_renders_on_every_kind_of_grid(variant):
    G = Generator(tiny_model(**VARIANTS[variant])).eval()
    z = torch.randn(2, 16)
    for name, grid in _grids(16).items():
        for noise in ("random", "const", "off"):
            img = G(z, grid, noise_mode=noise)
            assert img.shape == (2, 3, grid.height, grid.width), (name, noise)
            assert torch.isfinite(img).all(), (name, noise)


@pytest.mark.parametrize("variant", ["mspe-nopad", "csg-nopad", "csg-ms-nopad"])
def test_padding_free_generator_is_exactly_shift_equivariant_by_coarsest_stride(variant):
    G = Generator(tiny_model(resolution=32, **VARIANTS[variant])).eval()
    f0 = G.coarsest_stride  # 8
    z = torch.randn(2, 16)
    grid = Grid(40, 56)
    dy, dx = 2 * f0, 3 * f0
    a = G(z, grid, noise_mode="off")
    b = G(z, grid.shift(dy, dx), noise_mode="off")
    # b shows a's content moved by (dy, dx): compare where both are defined
    assert torch.allclose(b[..., dy:, dx:], a[..., : 40 - dy, : 56 - dx], atol=1e-5)
    # and it holds with position-aligned constant noise too
    a, b = G(z, grid, noise_mode="const"), G(z, grid.shift(-f0, f0), noise_mode="const")
    assert torch.allclose(b[..., : 40 - f0, f0:], a[..., f0:, : 56 - f0], atol=1e-5)


def test_zero_padded_generator_is_not_shift_equivariant():
    """The invariant above is a property of padding-free generators, not of the test."""
    G = Generator(tiny_model(resolution=32, **VARIANTS["mspe"])).eval()
    z = torch.randn(2, 16)
    a, b = G(z, Grid(40, 56), noise_mode="off"), G(z, Grid(40, 56).shift(16, 24), noise_mode="off")
    assert not torch.allclose(b[..., 16:, 24:], a[..., :24, :32], atol=1e-3)


def test_padding_free_margins_follow_the_valid_conv_arithmetic():
    assert padding_free_margins(4) == [3, 3, 2, 0]
    assert padding_free_margins(1) == [0]


def test_mspe_has_one_gamma_per_scale_starting_at_one_sspe_has_none():
    ms = Generator(tiny_model(resolution=32, **VARIANTS["mspe"]))
    gammas = [n for n, _ in ms.named_parameters() if n.endswith("gamma")]
    assert len(gammas) == 3  # 8, 16, 32; the 4x4 scale takes the encoding as input (Choi Eq. 4)
    assert all(p.item() == 1.0 for n, p in ms.named_parameters() if n.endswith("gamma"))
    ss = Generator(tiny_model(resolution=32, **VARIANTS["sspe"]))
    assert not [n for n, _ in ss.named_parameters() if n.endswith("gamma")]


def test_gamma_scales_the_added_encoding():
    G = Generator(tiny_model(**VARIANTS["mspe"])).eval()
    z = torch.randn(1, 16)
    a = G(z, noise_mode="off")
    with torch.no_grad():
        for n, p in G.named_parameters():
            if n.endswith("gamma"):
                p.zero_()
    b = G(z, noise_mode="off")
    assert not torch.allclose(a, b)


def test_positional_encodings_move_with_the_module_and_are_not_saved():
    G = Generator(tiny_model(**VARIANTS["mspe"]))
    assert not [k for k in G.state_dict() if "omega" in k]
    G = G.double()
    assert G(torch.randn(1, 16, dtype=torch.float64), noise_mode="const").dtype == torch.float64


def test_const_noise_is_deterministic_position_aligned_and_gaussian():
    c = Grid(64, 64).coords()
    n = lattice_noise(c, seed=3)
    assert torch.equal(n, lattice_noise(c, seed=3))
    assert not torch.equal(n, lattice_noise(c, seed=4))
    shifted = lattice_noise(Grid(64, 64).shift(5, 7).coords(), seed=3)
    assert torch.equal(shifted[..., 5:, 7:], n[..., :-5, :-7])
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05


def test_random_noise_changes_images_const_and_off_do_not():
    G = Generator(tiny_model(**VARIANTS["mspe"])).eval()
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "strength"):
                m.strength.fill_(0.5)
    z = torch.randn(1, 16)
    assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert not torch.equal(G(z, noise_mode="const"), G(z, noise_mode="off"))


def test_truncation_pulls_towards_w_avg():
    G = Generator(tiny_model(**VARIANTS["mspe"])).eval()
    z = torch.randn(3, 16)
    w = G.mapping(z)
    assert torch.allclose(G.mapping(z, truncation_psi=0.0), G.mapping.w_avg.expand_as(w))


def test_invalid_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="power of two"):
        Generator(tiny_model(resolution=24))
    with pytest.raises(ValueError, match="padding-free"):
        Generator(tiny_model(padding="none", upsample="transposed"))


def test_discriminator_with_adaptive_pool_takes_several_sizes():
    D = Discriminator(DiscriminatorConfig(resolution=16, channel_base=128, channel_max=16, adaptive_pool=True))
    for size in [(16, 16), (24, 24), (32, 32), (16, 32)]:
        assert D(torch.randn(4, 3, *size)).shape == (4,)
    D = Discriminator(DiscriminatorConfig(resolution=16, channel_base=128, channel_max=16))
    assert D(torch.randn(3, 3, 16, 16)).shape == (3,)
    with pytest.raises(ValueError, match="adaptive_pool"):
        D(torch.randn(2, 3, 24, 24))
