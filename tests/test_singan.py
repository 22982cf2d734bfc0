"""SinGAN (models/singan.py, training/singan.py): the pyramid, rendering on any grid, position-aligned
noise and encodings, padding-free invariants, and an exactly resumable trainer."""
from __future__ import annotations

import json

import math

import pytest
import torch

from conftest import tiny_run
from posgen import checkpoint
from posgen.errors import ConfigError, DataError
from posgen.grid import Grid
from posgen.models.singan import Generator, SinGANConfig, Span, fit_image_size, lattice_coords, pyramid, resample
from posgen.sampling import render_seeds
from posgen.training.loop import build_trainer, train


def tiny(**kw) -> Generator:
    """An untrained tiny SinGAN with weights large enough for position effects to show (the official
    N(0, 0.02) init makes every output about 1e-4)."""
    kw = {"image_size": (30, 45), "min_size": 12, "channels": 8, "max_channels": 8, **kw}
    G = Generator(SinGANConfig(**kw)).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    for p in G.parameters():
        if p.ndim == 4:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return G


def halves(**kw) -> Generator:
    """Two scales with densities 1/2 and 1: a shift by 2 output pixels is whole pixels at both."""
    return tiny(image_size=(24, 32), min_size=12, scale_factor=0.5, **kw)


# ---- the pyramid ------------------------------------------------------------------------------
def test_pyramid_matches_the_official_rule():
    assert fit_image_size(427, 640, 128) == (86, 128) and fit_image_size(100, 60, 250) == (100, 60)
    rhos = pyramid((86, 128), 25, 0.75)
    n = math.ceil(math.log(25 / 86) / math.log(0.75))
    assert len(rhos) == n + 1 == 6 and rhos[-1] == 1.0
    r = rhos[-2]
    assert 0.75 < r < 0.8 and all(math.isclose(rhos[s] / rhos[s + 1], r) for s in range(n))
    cfg = SinGANConfig(image_size=(86, 128), max_size=128)
    assert cfg.sizes == [(25, 38), (33, 48), (41, 61), (53, 79), (68, 100), (86, 128)]
    assert pyramid((20, 30), 25, 0.75) == [1.0]


def test_the_pyramid_is_config_and_an_unset_image_size_is_one_line():
    with pytest.raises(ConfigError, match="model.image_size is not set"):
        Generator(SinGANConfig())
    assert SinGANConfig(image_size=(86, 128), max_size=128).num_scales == 6


# ---- lattices and resampling ------------------------------------------------------------------
def test_lattice_coords_agree_with_grid_scale_coords():
    grid = Grid(12, 20).shift(1.5, -2.25)
    for stride, m in ((1, 0), (2, 3), (4, 1)):
        h, w = grid.scale_lattice(stride, m)
        ours = lattice_coords(grid, 1 / stride, Span(-m, -m, h, w))
        assert torch.allclose(ours, grid.scale_coords(stride, m, dtype=torch.float64), atol=1e-9)


def test_resample_reproduces_a_linear_ramp_with_aligned_pixel_centres():
    # a ramp in coarse indices a, resampled: fine pixel a' reads a = (a' + 1/2) q - 1/2; with q = 1/3 the fine
    # pixels 1, 4, 7 sit exactly on coarse pixels 0, 1, 2 (where bicubic interpolation is exact)
    src = Span(-3, -3, 16, 16)
    a = torch.arange(-3, 13, dtype=torch.float32)
    x = a.view(1, 1, 1, -1).expand(1, 1, 16, 16).contiguous()
    y = resample(x, src, Span(0, 0, 10, 10), 1 / 3)
    assert torch.allclose(y[0, 0, 4, [1, 4, 7]], torch.tensor([0.0, 1.0, 2.0]), atol=1e-5)
    assert torch.allclose(resample(x, src, Span(0, 0, 10, 10), 1.0)[0, 0, 4], torch.arange(10.0), atol=1e-5)


# ---- rendering on grids -----------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["input", "zero", "none"])
@pytest.mark.parametrize("encoding", ["none", "cartesian", "sinusoid"])
def test_non_square_and_wider_canvases_render(padding, encoding):
    G = tiny(padding=padding, encoding=encoding)
    assert render_seeds(G, [0]).shape == (1, 3, 30, 45)
    for size in ((30, 68), (30, 90), (41, 17), (17, 41)):  # 1.5x and 2x wider, tall and short
        img = render_seeds(G, [0, 1], Grid(*size))
        assert img.shape == (2, 3, *size) and torch.isfinite(img).all()


def test_renders_are_deterministic_per_seed_and_batch_independent():
    G = tiny(padding="none", encoding="sinusoid")
    a = render_seeds(G, [3, 5, 8], batch_size=3)
    assert torch.allclose(render_seeds(G, [5], batch_size=1), a[1:2], atol=1e-3)  # outputs ~5 here
    assert torch.equal(G.latents([3, 5]), G.latents([3, 5]))
    assert not torch.allclose(a[0], a[1])


def test_latents_are_the_flattened_noise_pyramid():
    G = tiny(padding="none", encoding="cartesian")
    grid = Grid(30, 60)
    z = G.latents([4], grid)
    shapes = G.noise_shapes(grid)
    assert shapes[0][0] == 2 and all(c == 3 for c, _, _ in shapes[1:])
    assert z.shape == (1, sum(math.prod(s) for s in shapes))
    parts = G.split(z, grid)
    assert [tuple(p.shape[1:]) for p in parts] == shapes
    assert abs(float(z.std()) - 1) < 0.05 and abs(float(z.mean())) < 0.05  # N(0, 1)
    with pytest.raises(ValueError, match="latents for this grid"):
        G.render(z, Grid(30, 45))


def test_noise_is_position_aligned():
    G = halves(padding="input")
    grid = Grid(24, 32)
    n0 = G.noise_pyramid([7], grid)
    n1 = G.noise_pyramid([7], grid.shift(0, 2))  # one coarse pixel, two fine pixels to the right
    assert torch.equal(n1[0][..., 1:], n0[0][..., :-1]) and torch.equal(n1[1][..., 2:], n0[1][..., :-2])
    wide = G.noise_pyramid([7], Grid(24, 64))  # a wider canvas extends the same field
    assert torch.equal(wide[1][..., :32], n0[1])


@pytest.mark.parametrize("encoding", ["cartesian", "sinusoid"])
def test_a_shift_of_the_grid_shifts_the_coarse_encoding(encoding):
    G = tiny(padding="none", encoding=encoding)
    grid = Grid(30, 45)
    rho = G.densities[0]
    k = 3.0  # output pixels: k * rho coarse pixels, not a whole number
    pe, moved = G.positional_encoding(grid), G.positional_encoding(grid.shift(0, k))
    span = G.spans(grid, 0)[0][0]
    coords = lattice_coords(grid, rho, span).float()
    coords[0] -= k * rho
    assert torch.allclose(moved, G.encoding(coords) if encoding == "sinusoid" else
                          G.positional_encoding(grid, span) - torch.tensor([0.0, 2 * k * rho / G.cfg.sizes[0][1]]).view(1, 2, 1, 1),
                          atol=1e-5)
    assert not torch.allclose(moved, pe)
    if encoding == "cartesian":  # Eq. 6: [-1, -1] at the training canvas's top-left pixel
        assert torch.allclose(pe[0, :, span.top * -1, span.left * -1], torch.tensor([-1.0, -1.0]))


def test_cartesian_interp_keeps_the_anchors_at_the_rendered_canvas_corners():
    G = tiny(padding="input", encoding="cartesian", encoding_canvas="interp")
    for w in (45, 68, 90):
        pe = G.positional_encoding(Grid(30, w))
        assert torch.allclose(pe[0, :, 0, 0], torch.tensor([-1.0, -1.0]), atol=1e-6)
        h0, w0 = G.cfg.sizes[0]
        # the last coarse pixel of any canvas reads the last of the training canvas: 2 (n - 1) / n - 1
        assert abs(float(pe[0, 1, 0, -1]) - (2 * (w0 - 1) / w0 - 1)) < 0.1


# ---- padding: the implicit positional encoding (Xu Sec. 3.2) ---------------------------------
def constant_latents(G: Generator, grid: Grid) -> torch.Tensor:
    return torch.full_like(G.latents([0], grid), 0.7)


def test_padding_free_without_encoding_has_no_position_information():
    """Spatially uniform noise gives a uniform image without padding (Xu Fig. 1b), not with it."""
    grid = Grid(30, 45)
    free = tiny(padding="none")
    img = free.render(constant_latents(free, grid), grid)
    assert float((img - img[..., :1, :1]).abs().max()) < 1e-4  # float rounding of outputs ~5
    for padding in ("input", "zero"):
        G = tiny(padding=padding)
        img = G.render(constant_latents(G, grid), grid)
        assert float((img - img[..., 15:16, 22:23]).abs().max()) > 0.1


def test_padding_free_wider_canvas_extends_the_image():
    G = tiny(padding="none", encoding="sinusoid")
    narrow, wide = render_seeds(G, [2], Grid(30, 45)), render_seeds(G, [2], Grid(30, 90))
    assert torch.allclose(wide[..., :45], narrow, atol=3e-3)  # float rounding of outputs ~5
    padded = tiny(padding="input")
    n2, w2 = render_seeds(padded, [2], Grid(30, 45)), render_seeds(padded, [2], Grid(30, 90))
    assert not torch.allclose(w2[..., :45], n2, atol=0.1)  # the zero pad at the old border is gone


def test_padding_free_render_is_shift_equivariant_at_whole_pixel_shifts():
    G = halves(padding="none", encoding="cartesian")
    grid = Grid(24, 32)
    a, b = render_seeds(G, [1], grid), render_seeds(G, [1], grid.shift(2, 4))
    assert torch.allclose(b[..., 2:, 4:], a[..., :-2, :-4], atol=3e-3)
    padded = halves(padding="zero", encoding="cartesian")
    a, b = render_seeds(padded, [1], grid), render_seeds(padded, [1], grid.shift(2, 4))
    assert not torch.allclose(b[..., 2:, 4:], a[..., :-2, :-4], atol=0.1)


def test_reconstruction_noise_is_fixed_at_the_coarsest_scale_and_zero_above():
    G = tiny(padding="none")
    rec = G.reconstruction_noise()
    assert rec[0].abs().sum() > 0 and all(float(r.abs().sum()) == 0 for r in rec[1:])
    assert not torch.equal(rec[0], G.noise_pyramid([0], count=1)[0])
    assert G.reconstruction_latents().shape == G.latents([0]).shape


# ---- training ---------------------------------------------------------------------------------
def test_the_trainer_sets_the_pyramid_from_the_image_and_refuses_digits(tmp_path):
    cfg = tiny_run("singan-spe")
    with pytest.raises(ConfigError, match="known once"):
        cfg.train.total_steps
    trainer = build_trainer(cfg, seed=0)
    assert tuple(cfg.model.image_size) == (22, 32) and cfg.train.total_steps == 2
    assert [tuple(r.shape[-2:]) for r in trainer.reals] == cfg.model.sizes
    with pytest.raises(DataError, match="one image"):
        build_trainer(tiny_run("singan-pad", "data.source=digits"))


def test_training_runs_every_padding_and_resumes_exactly(tmp_path):
    extra = ["train.iters_per_scale=2", "train.d_steps=2", "train.g_steps=2", "train.snapshot_kimg=0.003"]
    for variant in ("pad", "nopad", "csg"):
        cfg = tiny_run(f"singan-{variant}", *extra)
        whole = tmp_path / f"{variant}-whole"
        train(cfg, whole, seed=3, progress=False)
        part = tmp_path / f"{variant}-part"
        train(cfg, part, seed=3, progress=False, max_seconds=0)  # stops after each step
        for _ in range(2):
            train(None, part, resume=True, progress=False, max_seconds=0)
        assert checkpoint.load(part)[2]["step"] == 3  # within the second scale
        train(None, part, resume=True, progress=False)
        a, _, sa = checkpoint.load(whole)
        b, _, sb = checkpoint.load(part)
        assert sa["step"] == sb["step"] == 4
        for k in a:
            if k.startswith("G."):
                assert torch.equal(a[k], b[k]), (variant, k)
        G, _, _ = checkpoint.load_generator(whole)
        assert float(G.noise_amp[1]) != 1.0 and 0 < float(G.noise_amp[1]) < 1  # 0.1 x reconstruction RMSE


# ---- the study's measurements (posgen.apps.singan) -------------------------------------------
def test_study_measures_regions_and_layout():
    from posgen.apps.singan import layout_distance, region_masks, region_swd

    masks = region_masks(40, 60, 8)
    assert masks["border"][0, 0] and not masks["border"][15, 25] and masks["centre"][15, 25]
    assert not (masks["border"] & masks["centre"]).any()
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 40, 60, generator=gen) * 2 - 1
    real = torch.nn.functional.avg_pool2d(real, 3, 1, 1)  # some texture
    assert layout_distance(real, real, 10) == 0
    assert layout_distance(real.flip(-1), real, 10) > 0
    same = region_swd(real.expand(4, -1, -1, -1), real, 8, 64, seed=0)
    other = region_swd(torch.zeros(4, 3, 40, 60) + 0.5, real, 8, 64, seed=0)
    assert same["swd_border"] < other["swd_border"] / 5 and same["swd_centre"] < other["swd_centre"] / 5


def test_cli_trains_on_an_image_file_and_generates_wider(tmp_path):
    from PIL import Image

    from posgen.cli import main

    gen = torch.Generator().manual_seed(1)
    pixels = (torch.rand(30, 50, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    out = tmp_path / "run"
    assert main(["train", "--preset", "singan-spe", "--data", str(tmp_path / "photo.png"), "--out", str(out),
                 *[a for kv in ("model.min_size=16", "model.scale_factor=0.5", "model.channels=8", "model.max_channels=8",
                                "train.iters_per_scale=1", "train.d_steps=1", "train.g_steps=1", "train.sample_seeds=2")
                   for a in ("--set", kv)]]) == 0
    _, cfg, state = checkpoint.load(out)
    assert tuple(cfg.model.image_size) == (30, 50) and state["step"] == cfg.model.num_scales == 2
    assert main(["generate", "--checkpoint", str(out), "--size", "30x75", "--seeds", "0-1",
                 "--out", str(tmp_path / "gen")]) == 0
    assert Image.open(tmp_path / "gen" / "seed0001.png").size == (75, 30)
    # the figures command on that run: every number and the figure, and a refusal for a non-SinGAN model
    assert main(["singan", "--models", str(out), "--samples", "2", "--out", str(tmp_path / "fig")]) == 0
    record = json.loads((tmp_path / "fig" / "singan.json").read_text())
    assert set(record) == {str(out)} and record[str(out)]["iterations"] == 2
    assert (tmp_path / "fig" / "singan_samples.png").stat().st_size > 1000
    assert main(["singan", "--models", "digits-mspe", "--out", str(tmp_path / "no")]) == 2
    assert not (tmp_path / "no" / "singan.json").exists()


def test_options_without_effect_are_refused():
    with pytest.raises(ValueError, match="Cartesian grid"):
        SinGANConfig(image_size=(30, 45), encoding="sinusoid", encoding_canvas="interp").validate()
    with pytest.raises(ValueError, match="sides in"):
        SinGANConfig(image_size=(10, 300)).validate()
