"""CIPS (Anokhin et al.): Fourier features, the generator on grids and point sets, streaming."""
import math

import pytest
import torch

from posgen.errors import CapabilityError

from posgen.encodings import FourierFeatures
from posgen.grid import Grid, PointGrid
from posgen.models.cips import TABLE3_VARIANTS, CIPSConfig, Generator
from posgen.ops import MappingNetwork, ModulatedConv2d


def tiny(**kw) -> CIPSConfig:
    kw = {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "width": 16, "num_layers": 4,
          "fourier_channels": 8, "embedding_channels": 8, **kw}
    return CIPSConfig(**kw)


def model(variant: str = "main", **kw) -> Generator:
    return Generator(tiny(**TABLE3_VARIANTS[variant], **kw)).eval()


# ---- Fourier features (Eq. 3) ------------------------------------------------------------

def test_fourier_normalisation_maps_the_training_canvas_to_minus_one_one_and_extrapolates():
    ff = FourierFeatures(4, (5, 9))  # H = 5, W = 9
    x, y = ff.normalize(Grid(5, 9).coords())  # [1, 1, 5, 9] each
    assert x[0, 0, 0, 0] == -1 and x[0, 0, 0, 8] == 1 and x[0, 0, 0, 4] == 0
    assert y[0, 0, 0, 0] == -1 and y[0, 0, 4, 0] == 1 and y[0, 0, 2, 0] == 0
    x, y = ff.normalize(torch.tensor([[13.0, -2.0], [7.0, 0.0]]))  # points (13, 7), (-2, 0)
    assert torch.allclose(x.flatten(), torch.tensor([2.25, -1.5])) and torch.allclose(y.flatten(), torch.tensor([2.5, -1.0]))


def test_fourier_features_golden_values_eq3():
    ff = FourierFeatures(3, (5, 9))
    with torch.no_grad():
        ff.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, -0.5]]))  # B_fo acting on (x', y')
    xn, yn = 2 * 6 / 8 - 1, 2 * 1 / 4 - 1  # pixel (x=6, y=1): x' = 0.5, y' = -0.5
    out = ff(torch.tensor([[[6.0]], [[1.0]]])).flatten()
    want = [math.sin(xn), math.sin(2 * yn), math.sin(3 * xn - 0.5 * yn)]
    assert torch.allclose(out, torch.tensor(want), atol=1e-6)
    ff = FourierFeatures(3, (5, 9), bias=True)
    with torch.no_grad():
        ff.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, -0.5]]))
        ff.bias.copy_(torch.tensor([0.1, -0.2, 1.0]))
    out = ff(torch.tensor([[[6.0]], [[1.0]]])).flatten()
    want = [math.sin(xn + 0.1), math.sin(2 * yn - 0.2), math.sin(3 * xn - 0.5 * yn + 1.0)]
    assert torch.allclose(out, torch.tensor(want), atol=1e-6)


def test_fourier_features_shapes_init_and_errors():
    ff = FourierFeatures(6, (16, 16))
    assert ff(torch.zeros(2, 5, 7)).shape == (1, 6, 5, 7)
    assert ff(torch.zeros(3, 2, 5, 7)).shape == (3, 6, 5, 7)
    assert ff(torch.zeros(2, 11)).shape == (1, 6, 11)
    assert ff.bias is None and [n for n, _ in ff.named_parameters()] == ["weight"]
    big = FourierFeatures(4096, (16, 16)).weight  # U(-3/sqrt(2), 3/sqrt(2))
    assert big.abs().max() <= 3 / math.sqrt(2) and big.abs().max() > 2.0 and abs(big.mean()) < 0.1
    with pytest.raises(ValueError, match="2x2"):
        FourierFeatures(4, (1, 16))
    with pytest.raises(ValueError, match="coords"):
        ff(torch.zeros(3, 5, 7))


def test_fourier_features_gradients_reach_b_and_phase():
    ff = FourierFeatures(4, (8, 8), bias=True)
    ff(Grid(8, 8).coords()).square().sum().backward()
    assert ff.weight.grad.abs().sum() > 0 and ff.bias.grad.abs().sum() > 0


# ---- ModFC (Eq. 2) -------------------------------------------------------------------------

def test_modfc_sine_activation_is_sin_of_the_linear_layer():
    lin = ModulatedConv2d(5, 4, 1, 8, activation=None)
    sine = ModulatedConv2d(5, 4, 1, 8, activation="sine")
    sine.load_state_dict(lin.state_dict())
    x, w = torch.randn(2, 5, 3, 3), torch.randn(2, 8)
    assert torch.allclose(sine(x, w), torch.sin(lin(x, w)), atol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        ModulatedConv2d(5, 4, 1, 8, activation="relu")


# ---- generator -----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(TABLE3_VARIANTS))
def test_every_table3_variant_renders_on_grids_and_point_sets(variant):
    G = model(variant)
    z = torch.randn(2, 16)
    g = Grid(16, 16)
    for grid in (g, Grid(12, 20), g.zoom(1.5), g.rotate(0.4), g.center_crop_resize(24, 40)):
        img = G(z, grid)
        assert img.shape == (2, 3, grid.height, grid.width) and torch.isfinite(img).all()
    pts = PointGrid(torch.rand(37, 2) * 20 - 2)
    img = G(z, pts)
    assert img.shape == (2, 3, 37) and torch.isfinite(img).all()


def test_table3_variants_switch_the_right_parts():
    ne = model("NE")
    assert ne.embedding is None and not [n for n, _ in ne.named_parameters() if "embedding" in n]
    assert model("no-fourier").fourier is None and model("sine").fourier is None
    main = model("main")
    assert main.embedding.weight.shape == (8, 16, 16) and main.fourier.weight.shape == (8, 2)
    assert main.input.in_channels == 16 and ne.input.in_channels == 8
    assert sum(b.torgb is not None for b in main.blocks) == 2  # to-RGB after every pair of layers
    assert [b.torgb is not None for b in model("base").blocks] == [False, True]  # one output layer
    acts = {m.activation for m in model("sine").modules() if isinstance(m, ModulatedConv2d) and m.demodulate}
    assert acts == {"sine"}


def test_paper_scale_parameter_counts_match_table4():
    """Anokhin et al. Table 4: CIPS-Default 45.9M, CIPS-NE 10.2M parameters (built on the meta device)."""
    with torch.device("meta"):
        for variant, millions in (("main", 45.9), ("NE", 10.2)):
            G = Generator(CIPSConfig(**TABLE3_VARIANTS[variant]))
            assert round(sum(p.numel() for p in G.parameters()) / 1e6, 1) == millions, variant


def test_skips_and_residual_follow_the_paper_formulas():
    for variant in ("main", "residual"):
        G = model(variant)
        ws = torch.randn(2, G.num_ws, 16)  # a different w per layer pins the ws layout
        x = G.input(G.encode(Grid(16, 16).coords()).expand(2, -1, -1, -1), ws[:, 0])
        b0, b1 = G.blocks
        h1 = b0.fc1(b0.fc0(x, ws[:, 1]), ws[:, 2])
        if variant == "residual":  # (x + f(x)) / sqrt(2), one output layer
            h1 = (x + h1) / math.sqrt(2)
            h2 = (h1 + b1.fc1(b1.fc0(h1, ws[:, 3]), ws[:, 4])) / math.sqrt(2)
            want = b1.torgb(h2, ws[:, 5])
        else:  # summed to-RGB after each pair
            h2 = b1.fc1(b1.fc0(h1, ws[:, 3]), ws[:, 4])
            want = b0.torgb(h1, ws[:, 3]) + b1.torgb(h2, ws[:, 5])
        assert torch.allclose(G.synthesis(ws), want, atol=1e-5), variant


def test_point_grid_render_equals_grid_render():
    G = model("main")
    z = torch.randn(2, 16)
    g = Grid(12, 20).shift(1.5, -2.25).rotate(0.3)
    assert torch.allclose(G(z, PointGrid.from_grid(g)), G(z, g).flatten(2), atol=1e-5)


@pytest.mark.parametrize("variant", list(TABLE3_VARIANTS))
def test_whole_pixel_shifts_roll_and_larger_canvases_move_the_image_exactly(variant):
    """Pixels are independent and both encodings are anchored to the training canvas, so every
    variant is exactly translation-equivariant for whole-pixel shifts where the pixels overlap."""
    G = model(variant)
    z = torch.randn(2, 16)
    g = Grid(16, 16)
    a = G(z, g)
    b = G(z, g.shift(3, -5))
    assert torch.allclose(b[..., 3:, :-5], a[..., :-3, 5:], atol=1e-6)
    assert torch.allclose(G(z, g.roll(3, -5)), a.roll((3, -5), dims=(2, 3)), atol=1e-6)
    big = G(z, g.center_crop_resize(24, 30))
    assert torch.allclose(big[..., 4:20, 7:23], a, atol=1e-6)


@pytest.mark.parametrize("variant", list(TABLE3_VARIANTS))
def test_denser_grid_hits_the_training_pixels_exactly_where_it_is_on_the_lattice(variant):
    """zoom(3) keeps pixel edges: fine pixel 3k + 1 sits on training pixel k, so the embedding is
    read exactly there (elsewhere it is interpolated) and those pixels reproduce the image."""
    G = model(variant)
    z = torch.randn(2, 16)
    a = G(z)
    fine = G(z, Grid(16, 16).zoom(3))
    assert fine.shape[-2:] == (48, 48)
    assert torch.allclose(fine[..., 1::3, 1::3], a, atol=1e-6)


def test_beyond_the_canvas_only_the_embedding_only_variants_repeat_or_replicate():
    """Outside the training canvas the embedding wraps or clamps, while Fourier features keep
    extrapolating: a wide canvas tiles the image exactly only without Fourier features."""
    z = torch.randn(2, 16)
    wide = Grid(16, 40)
    periodic = model("no-fourier", embedding_boundary="wrap")(z, wide)
    assert torch.allclose(periodic[..., 16:32], periodic[..., :16], atol=1e-6)
    clamped = model("no-fourier", embedding_boundary="clamp")(z, wide)
    assert torch.allclose(clamped[..., 16:], clamped[..., 15:16].expand(-1, -1, -1, 24), atol=1e-6)
    for boundary in ("wrap", "clamp"):
        img = model("main", embedding_boundary=boundary)(z, wide)
        assert not torch.allclose(img[..., 16:32], img[..., :16], atol=1e-3)
        assert not torch.allclose(img[..., 16:], img[..., 15:16].expand(-1, -1, -1, 24), atol=1e-3)


def test_chunked_rendering_equals_one_shot():
    G = model("main")
    z = torch.randn(2, 16)
    g = Grid(13, 21).shift(0.5, 2).rotate(0.2)
    a = G(z, g)
    for chunk in (1, 7, 40, 10_000):  # pieces of a row, row bands with a ragged last band, one shot
        assert torch.allclose(G(z, g, chunk_points=chunk), a, atol=1e-5), chunk
    pts = PointGrid(torch.rand(50, 2) * 16)
    assert torch.allclose(G(z, pts, chunk_points=9), G(z, pts), atol=1e-5)


def test_chunks_bound_the_points_per_pass():
    G = model("main")
    sizes = []
    G.input.register_forward_hook(lambda m, args, out: sizes.append(out.shape[-2] * out.shape[-1]))
    with torch.no_grad():
        for grid in (Grid(64, 96), Grid(5, 300), PointGrid(torch.rand(1000, 2) * 16)):
            sizes.clear()
            G(torch.randn(1, 16), grid, chunk_points=100)
            total = grid.height * grid.width if isinstance(grid, Grid) else 1000
            assert max(sizes) <= 100 and sum(sizes) == total


def test_gradients_reach_fourier_features_and_embeddings_also_when_chunked():
    G = model("main")
    z = torch.randn(2, 16)
    grads = []
    for chunk in (None, 50):
        G.zero_grad()
        G(z, Grid(16, 16).shift(0.5, 0), chunk_points=chunk).square().mean().backward()
        grads.append((G.fourier.weight.grad.clone(), G.embedding.weight.grad.clone()))
        assert all(g.abs().sum() > 0 for g in grads[-1])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))


def test_generator_interface_matches_stylegan2():
    G = model("main")
    assert isinstance(G.mapping, MappingNetwork) and G.num_ws == 6 and G.coarsest_stride == 1
    assert G.default_grid().size == (16, 16) and G.resolution == 16
    z = torch.randn(3, 16)
    assert torch.equal(G(z), G(z, noise_mode="off"))  # no noise inputs: "off" holds trivially, "random" is refused
    with pytest.raises(CapabilityError, match="^noise_mode needs a generator with noise inputs; this is a cips model$"):
        G(z, noise_mode="random")
    img = G(z, truncation_psi=0.0)
    assert torch.allclose(img, img[:1].expand_as(img), atol=1e-6)  # every z -> w_avg
    assert G.double()(z.double()).dtype == torch.float64


def test_invalid_configs_and_inputs_raise_clear_errors():
    for kw, match in ((dict(num_layers=3), "even"), (dict(fourier=False, embedding=False), "positional encoding"),
                      (dict(activation="relu"), "activation"), (dict(embedding_boundary="mirror"), "embedding_boundary"),
                      (dict(resolution=1), "at least 2"), (dict(width=0), "width"),
                      (dict(fourier_channels=0), "fourier_channels")):
        with pytest.raises(ValueError, match=match):
            tiny(**kw).validate()
    assert tiny(fourier=False, fourier_channels=0).validate() is None  # unused sizes are not checked
    G = model("main")
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="chunk_points"):
        G(torch.randn(1, 16), chunk_points=0)
    with pytest.raises(TypeError, match="Grid or a PointGrid"):
        G(torch.randn(1, 16), torch.zeros(2, 4, 4))
