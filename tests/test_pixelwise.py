"""What pixel independence buys: cylinders, foveated point sets, per-pixel styles, the `posgen cips` figures."""
import json
import math

import pytest
import torch

from conftest import tiny_run
from posgen.apps.cips import (CIPSFigures, CIPSSettings, high_frequency_share, lanczos_upsample, mean_spectrum,
                              principal_components, scaled_digits, seam_errors, without)
from posgen.cli import main
from posgen.data import DataConfig, DataError, open_dataset
from posgen.encodings import FourierFeatures, LearnedConstant
from posgen.grid import Grid, PointGrid
from posgen.metrics.evaluate import to_json
from posgen.models.cips import CIPSConfig, Generator
from posgen.pixelwise import fill_from_points, gaussian_pixels, render_foveated, render_style_blend
from posgen.training.loop import build_trainer, train


def cips(**kw) -> Generator:
    kw = {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "width": 16, "num_layers": 4,
          "fourier_channels": 8, "embedding_channels": 8, **kw}
    return Generator(CIPSConfig(**kw)).eval()


def ws_for(G: Generator, n: int = 2) -> torch.Tensor:
    return G.mapping(torch.randn(n, G.cfg.z_dim)).unsqueeze(1).expand(-1, G.num_ws, -1).detach()


# ---- the cylinder (Sec. 4.8) ------------------------------------------------------------------

def test_cylindrical_fourier_features_are_periodic_and_match_the_plane_locally():
    ff = FourierFeatures(6, (16, 16), circumference=40)
    assert ff.weight.shape == (6, 3)
    c = Grid(16, 40).coords()
    assert torch.allclose(ff(c), ff(c + torch.tensor([40.0, 0]).view(2, 1, 1)), atol=1e-5)  # x + P is x
    xs = ff.normalize(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))  # two points one pixel apart on row 0
    arc = math.hypot(float(xs[0][0, 0, 1] - xs[0][0, 0, 0]), float(xs[1][0, 0, 1] - xs[1][0, 0, 0]))
    assert arc == pytest.approx(2 / 15, rel=2e-3)  # one pixel of arc (chord ~ arc) = one pixel of x' = 2 / (W - 1)
    with pytest.raises(ValueError, match="circumference"):
        FourierFeatures(4, (16, 16), circumference=0)


def test_learned_lattice_wraps_and_clamps_per_axis():
    const = LearnedConstant(2, (3, 5), boundary=("clamp", "wrap"))
    inside = const(Grid(3, 5).coords())
    assert torch.equal(const(Grid(3, 5).shift(0, -5).coords()), inside)  # x wraps with period 5
    below = const(Grid(3, 5).shift(-4, 0).coords())  # rows 4..6: beyond the bottom edge
    assert torch.equal(below, inside[:, :, 2:3].expand_as(below))  # y replicates the last row
    with pytest.raises(ValueError, match=r"\(y, x\) pair"):
        LearnedConstant(2, (3, 5), boundary=("clamp", "mirror"))


def test_a_cylindrical_model_closes_its_strip_exactly():
    G = cips(circumference=40)
    ws = ws_for(G)
    strip = G.panorama_grid()
    assert strip.size == (16, 40) and G.embedding.weight.shape[1:] == (16, 40)
    two_laps = G.synthesis(ws, strip.resize(16, 80)).detach()
    assert torch.allclose(two_laps[..., 40:], two_laps[..., :40], atol=1e-5)  # column j + P is column j
    rolled = G.synthesis(ws, strip.shift(0, -13)).detach()  # start 13 px further round
    assert torch.allclose(rolled, two_laps[..., 13:53], atol=1e-5)
    r = seam_errors(two_laps[..., :40])
    assert r["ratio"] == pytest.approx(r["seam_mse"] / r["neighbour_mse"])
    assert 0 <= r["seam_rank"] <= 1 and r["local_ratio"] == pytest.approx(r["seam_mse"] / r["local_mse"])
    planar = cips()  # a plane has no seam to close: its edges do not match
    assert seam_errors(planar.synthesis(ws_for(planar), Grid(16, 40)).detach())["ratio"] > 1.5


def test_seam_errors_golden_values():
    ramp = torch.arange(10.0).expand(1, 1, 2, 10) / 10  # a sawtooth: steps of 0.1, then a jump of 0.9 at the seam
    r = seam_errors(ramp, local=2)
    assert r["neighbour_mse"] == pytest.approx(0.01) and r["seam_mse"] == pytest.approx(0.81)
    assert r["ratio"] == pytest.approx(81) and r["local_ratio"] == pytest.approx(81) and r["seam_rank"] == 1
    wave = torch.cos(torch.arange(10.0) * 2 * math.pi / 10).expand(1, 1, 2, 10)  # closes smoothly
    assert seam_errors(wave)["seam_rank"] < 0.5


def test_cylinder_errors():
    with pytest.raises(ValueError, match="circumference must be 0"):
        cips(circumference=8)
    with pytest.raises(ValueError, match="planar"):
        cips().panorama_grid()


def test_training_a_cylinder_draws_crops_at_random_angles(tmp_path):
    cfg = tiny_run("panorama-cips")
    trainer = build_trainer(cfg, seed=3)
    offsets = {float(trainer._grid(step, 16).coords()[0, 0, 0]) for step in range(12)}
    assert len(offsets) > 6 and all(0 <= o < 128 and o == int(o) for o in offsets)
    assert offsets == {float(build_trainer(cfg, seed=3)._grid(s, 16).coords()[0, 0, 0]) for s in range(12)}  # seeded
    out = train(cfg, tmp_path / "pano", seed=1, progress=False)
    from PIL import Image
    sheet = Image.open(sorted(out.glob("samples-*.png"))[-1])
    assert sheet.width > sheet.height  # the sample sheet shows whole 16x128 strips, one per row


# ---- data: patches of one photograph ---------------------------------------------------------

def test_patches_of_a_bundled_photo_cover_every_position():
    ds = open_dataset(DataConfig(source="sample:china.jpg", patch_height=24), (16, 16))
    assert len(ds) == (24 - 16 + 1) * (36 - 16 + 1)  # 427x640 scaled to 24x36
    first, right = ds[0], ds[1]
    assert first.shape == (3, 16, 16) and first.dtype == torch.uint8
    assert torch.equal(first[:, :, 1:], right[:, :, :-1])  # neighbouring items are 1-px shifted crops
    assert torch.equal(ds[21][:, :-1], first[:, 1:])  # the next row of positions
    whole = open_dataset(DataConfig(source="sample:flower.jpg"), (16, 24))
    assert len(whole) == 1 and whole[0].shape == (3, 16, 24)


def test_patch_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no bundled sample image 'nope.png'"):
        open_dataset(DataConfig(source="sample:nope.png"), (16, 16))
    with pytest.raises(DataError, match="raise data.patch_height"):
        open_dataset(DataConfig(source="sample:china.jpg", patch_height=8), (16, 16))
    with pytest.raises(DataError, match="is not an image file"):
        open_dataset(DataConfig(source=str(tmp_path), patch_height=32), (16, 16))
    with pytest.raises(DataError, match="patch_height must be 0"):
        DataConfig(source="sample:china.jpg", patch_height=-1).validate()


# ---- foveated synthesis (Fig. 8) -------------------------------------------------------------

def test_gaussian_pixels_are_distinct_dense_at_the_focus_and_seeded():
    grid = Grid(32, 32)
    idx = gaussian_pixels(grid, 0.1, seed=1)
    assert len(idx) == 102 and len(set(idx.tolist())) == 102 and torch.equal(idx, idx.sort().values)
    assert torch.equal(idx, gaussian_pixels(grid, 0.1, seed=1))
    y, x = idx // 32, idx % 32
    near = ((y - 15.5).abs() < 8) & ((x - 15.5).abs() < 8)
    assert near.float().mean() > 0.4  # a quarter of the area: 0.25 of uniform points, 0.47 of Gaussian ones
    assert torch.equal(gaussian_pixels(grid, 1.0), torch.arange(1024))
    with pytest.raises(ValueError, match="fraction"):
        gaussian_pixels(grid, 0)


def test_fill_keeps_known_pixels_and_is_exact_on_linear_images():
    h, w = 12, 10
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    ramp = (0.3 * x - 0.2 * y + 1).view(1, 1, h, w)
    idx = torch.tensor([0, w - 1, (h - 1) * w, h * w - 1, 5 * w + 4])  # the four corners and one inside
    filled = fill_from_points(ramp.flatten(2)[..., idx], idx, (h, w))
    assert torch.allclose(filled, ramp)  # linear interpolation reproduces a plane
    idx = torch.tensor([5 * w + 4, 6 * w + 4])  # too few for a triangulation: nearest fill
    filled = fill_from_points(ramp.flatten(2)[..., idx], idx, (h, w))
    assert filled[0, 0, 0, 0] == ramp[0, 0, 5, 4] and filled[0, 0, -1, 0] == ramp[0, 0, 6, 4]


def test_foveated_render_is_exact_on_its_points_and_improves_with_density():
    G = cips()
    ws = ws_for(G)
    grid = G.default_grid().zoom(2)
    full = G.synthesis(ws, grid).detach()
    errors = []
    for frac in (0.05, 0.25, 1.0):
        img, idx = render_foveated(G, ws, grid, frac)
        assert torch.allclose(img.flatten(2)[..., idx], full.flatten(2)[..., idx], atol=1e-5)
        assert torch.allclose(G.synthesis(ws, PointGrid.from_grid(grid, idx)), full.flatten(2)[..., idx], atol=1e-5)
        errors.append(float((img - full).square().mean()))
    assert errors[0] > errors[1] > errors[2] == pytest.approx(0, abs=1e-10)


# ---- per-pixel styles (Fig. 11c) --------------------------------------------------------------

def test_style_blend_is_each_style_where_the_mask_is_pure_and_their_mix_between():
    G = cips()
    ws = ws_for(G)
    grid = G.default_grid()
    a, b = G.synthesis(ws, grid).detach().split(1)
    mask = torch.zeros(16, 16)
    mask[:, 10:] = 1
    mask[:, 6:10] = 0.5
    out = render_style_blend(G, ws[:1], ws[1:], mask, grid)
    assert torch.allclose(out[..., :6], a[..., :6], atol=1e-5) and torch.allclose(out[..., 10:], b[..., 10:], atol=1e-5)
    mid = G.synthesis(torch.lerp(ws[:1], ws[1:], 128 / 255), grid).detach()  # 0.5 on 256 levels is level 128
    assert torch.allclose(out[..., 6:10], mid[..., 6:10], atol=1e-5)
    with pytest.raises(ValueError, match="mask must be"):
        render_style_blend(G, ws[:1], ws[1:], mask[:8], grid)


def test_point_set_rendering_needs_a_pixel_independent_generator(trained_run):
    from posgen.sampling import load

    G = load(str(trained_run)).G
    with pytest.raises(ValueError, match="^foveated rendering needs a pixel-independent generator \\(cips\\); "
                                         "this is a stylegan2 model$"):
        render_foveated(G, torch.zeros(1, G.num_ws, G.cfg.w_dim), G.default_grid(), 0.5)


# ---- analyses ------------------------------------------------------------------------------

def test_zeroing_an_encoding_zeroes_exactly_that_input():
    G = cips(fourier_bias=True)
    coords = G.default_grid().coords()
    for enc, other in (("fourier", "embedding"), ("embedding", "fourier")):
        H = without(G, enc)
        assert getattr(H, enc)(coords).abs().max() == 0
        assert torch.equal(getattr(H, other)(coords), getattr(G, other)(coords))
        assert getattr(G, enc)(coords).abs().max() > 0  # the original is untouched
    with pytest.raises(ValueError, match="no embedding"):
        without(cips(embedding=False), "embedding")


def test_encoding_analyses_on_known_signals():
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    smooth = torch.stack([torch.cos(2 * math.pi * x / 16), torch.sin(2 * math.pi * y / 16)])
    checker = ((x + y) % 2 * 2 - 1)[None]
    assert high_frequency_share(mean_spectrum(smooth)) < 1e-6 and high_frequency_share(mean_spectrum(checker)) > 0.99
    pcs, var = principal_components(torch.cat([smooth, 0.1 * smooth[:1]]), k=2)
    assert pcs.shape == (2, 16, 16) and sum(var) == pytest.approx(1.0) and pcs.abs().max() == pytest.approx(1.0)


def test_lanczos_upsampling_keeps_constants_and_hits_the_pixels_it_passes_through():
    base = Grid(8, 8)
    flat = torch.full((1, 3, 8, 8), 0.25)
    assert torch.allclose(lanczos_upsample(flat, base, base.zoom(4)), flat.new_full((1, 3, 32, 32), 0.25), atol=1e-6)
    img = torch.rand(1, 1, 8, 8) * 2 - 1
    up = lanczos_upsample(img, base, base.zoom(3))  # odd factor: every third pixel sits on a source pixel
    assert torch.allclose(up[..., 1::3, 1::3], img.clamp(-1, 1), atol=1e-6)


def test_scaled_digits_draw_the_same_layout_bigger():
    data = tiny_run("digits-cips").data
    big = scaled_digits(data, 4)
    assert big.digits.canvas == (64, 64) and big.digits.region == (0, 0, 32, 32)
    assert big.digits.jitter == 4 * data.digits.jitter and big.digits.colors == data.digits.colors


@pytest.fixture(scope="module")
def cips_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cips-runs")
    for preset in ("digits-cips", "digits-cips-ne", "panorama-cips"):
        train(tiny_run(preset, "model.width=8", "model.fourier_channels=4", "model.embedding_channels=4"),
              root / preset, seed=1, progress=False)
    return root


def test_cips_figures_write_every_part_and_its_numbers(cips_runs, trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    settings = CIPSSettings(model=str(cips_runs / "digits-cips"), ne_model=str(cips_runs / "digits-cips-ne"),
                            conv_model=str(trained_run), panorama=str(cips_runs / "panorama-cips"),
                            fid_samples=12, superres_samples=12, metric_samples=4, progress=False)
    out = tmp_path / "figs"
    record = CIPSFigures(out, settings).run(["superres", "foveated", "panorama", "blend", "ablate", "encodings"])
    for png in ("superres.png", "foveated.png", "panorama.png", "blend.png", "ablate-planar.png",
                "ablate-panorama.png", "encodings-planar.png", "encodings-panorama.png"):
        assert (out / png).stat().st_size > 1000, png
    assert json.loads((out / "cips.json").read_text()) == json.loads(to_json(record))
    assert set(record["superres"]["results"]) == {"2x", "4x"}
    assert record["foveated"]["results"]["100%"]["psnr_db"] == math.inf
    assert record["foveated"]["results"]["5%"]["points"] == round(0.05 * 32 * 32)  # 4x the 8x8 digit corner
    assert record["panorama"]["period_max_abs"] < 1e-4  # float32 phases of the second lap
    assert record["blend"]["max_abs_centre_vs_a"] < 1e-5 and record["blend"]["max_abs_outer_vs_b"] < 1e-5


def test_cips_cli_checks_its_arguments_before_measuring(cips_runs, tmp_path, capsys):
    assert main(["cips", "seams", "--out", str(tmp_path)]) == 2
    assert "unknown part 'seams'" in capsys.readouterr().err
    args = ["cips", "panorama", "--out", str(tmp_path), "--model", str(cips_runs / "digits-cips"),
            "--ne-model", str(cips_runs / "digits-cips-ne"), "--conv-model", str(cips_runs / "digits-cips")]
    assert main(args + ["--panorama", str(cips_runs / "digits-cips")]) == 2
    assert "not a cylindrical CIPS model" in capsys.readouterr().err
    assert main(args + ["--panorama", "/no/such/run"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "cips.json").exists()
