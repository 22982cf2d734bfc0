"""Issue 16 apps: projection, SeFa, style mixing, videos, and their commands (tiny models, seconds each)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_run
from posgen.apps.mixing import style_mix
from posgen.apps.projection import (NoiseMaps, ProjectionConfig, load_latent, param_grid, project, psnr,
                                    w_statistics)
from posgen.apps.sefa import edit_ws, factorize, style_layers
from posgen.apps.video import GifWriter, VideoConfig, read_gif, render_video, slerp, zoom_about_centre
from posgen.cli import main
from posgen.errors import CapabilityError, DataError, UsageError
from posgen.families import build_generator
from posgen.grid import Grid
from posgen.models.base import RenderOptions

OFF = RenderOptions(noise_mode="off")


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return build_generator(tiny_run()).eval()  # tiny MS-PE StyleGAN2, 16x16


@pytest.fixture(scope="module")
def singan_run(tmp_path_factory):
    from posgen.training.loop import train

    out = tmp_path_factory.mktemp("run") / "singan"
    train(tiny_run("singan-pad"), out, seed=1, progress=False)
    return out


def _ws(G, seed: int) -> torch.Tensor:
    z = torch.randn(1, G.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    return G.mapping(z)[:, None].expand(-1, G.num_ws, -1).detach()


# ---------------------------------------------------------------------------------------- projection

def test_projection_recovers_a_known_latent(G):
    """The target is G's own render of a known w: the loss falls by orders of magnitude and w is found."""
    w_avg, _ = w_statistics(G, 1000)
    w_true = _ws(G, 5)
    with torch.no_grad():
        target = G.synthesize(w_true, None, OFF)
    cfg = ProjectionConfig(steps=200, features="none", optimize_noise=False, initial_noise_factor=0.0,
                           w_avg_samples=1000)
    res = project(G, target, cfg)
    assert res.history[-1]["loss"] < 1e-3 * res.history[0]["loss"]
    rel = (res.ws[0, 0] - w_true[0, 0]).norm() / (w_true[0, 0] - w_avg).norm()
    assert rel < 0.02
    assert res.psnr[0] > 50
    assert torch.equal(res.ws[0, 0], res.ws[0, -1])  # plain w: one vector for every layer


def test_projection_recovers_a_subpixel_grid_shift(G):
    """An MS-PE generator explains a shifted image by moving its grid: with w known and fixed, the
    optimised grid translation finds the (fractional) shift and the scale stays 1."""
    w_true = _ws(G, 3)
    with torch.no_grad():
        target = G.synthesize(w_true, G.default_grid().shift(1.5, -2.0), OFF)
    cfg = ProjectionConfig(steps=100, features="none", optimize_noise=False, optimize_w=False, optimize_grid=True,
                           grid_search=False, grid_lr=0.1, w_avg_samples=100)
    res = project(G, target, cfg, init_ws=w_true)
    found = res.history[-1]["grid"][0]
    assert abs(found["dy"] - 1.5) < 0.25 and abs(found["dx"] + 2.0) < 0.25 and abs(found["zoom"] - 1) < 0.05
    assert res.history[-1]["loss"] < 0.01 * res.history[0]["loss"]


def test_param_grid_matches_grid_transforms():
    shift = torch.tensor([2.5, -1.0], dtype=torch.float64)
    g = param_grid(8, 8, shift, torch.tensor(0.0, dtype=torch.float64))
    assert torch.allclose(g.coords(), Grid(8, 8).shift(2.5, -1.0).coords())
    g2 = param_grid(8, 8, torch.zeros(2, dtype=torch.float64), torch.tensor(-math.log(2), dtype=torch.float64))
    assert torch.allclose(g2.coords(), Grid(8, 8).zoom(2, size=(8, 8)).coords())


def test_projection_loss_decreases_with_features_noise_and_w_plus(G):
    """The full objective (pixels + a feature network + noise maps, w+) on a real-looking target."""
    target = torch.full((2, 3, 16, 16), -1.0)
    target[:, 0, 2:9, 3:7] = 0.8  # a red bar in the top-left
    feats = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())  # a stand-in feature network
    import posgen.apps.projection as P

    orig = P.feature_network
    P.feature_network = lambda kind, src, device="cpu": ("stub", feats)
    try:
        res = project(G, target, ProjectionConfig(steps=60, w_plus=True, w_avg_samples=500))
    finally:
        P.feature_network = orig
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    assert res.ws.shape == (2, G.num_ws, G.cfg.w_dim) and not torch.equal(res.ws[0, 0], res.ws[0, -1])
    assert res.noise and all(m.shape[0] == 2 for m in res.noise.values())
    for m in res.noise.values():  # re-normalised after every step
        assert abs(float(m.mean())) < 1e-4 and abs(float(m.square().mean()) - 1) < 1e-3


def test_noise_regularization_penalises_correlated_noise(G):
    maps = NoiseMaps(G, 1)
    maps.maps = {"a": torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))}
    white = float(maps.regularization())
    maps.maps = {"a": torch.ones(1, 1, 32, 32)}
    assert float(maps.regularization()) > 100 * white


def test_psnr_definition():
    a = torch.zeros(1, 3, 4, 4)
    assert float(psnr(a, a + 0.2)) == pytest.approx(10 * math.log10(4 / 0.04), rel=1e-5)


# ---------------------------------------------------------------------------------------- SeFa

def test_sefa_directions_are_orthonormal_eigenvectors(G):
    f = factorize(G)
    d = f.directions.double()
    assert torch.allclose(d @ d.T, torch.eye(len(d), dtype=torch.float64), atol=1e-5)
    layers = [l for l in style_layers(G) if l.ws_index in f.layers and not l.torgb]
    A = torch.cat([l.weight for l in layers]).double()
    A = A / A.norm(dim=1, keepdim=True)
    M = A.T @ A
    for k in range(3):
        assert torch.allclose(M @ d[k], f.values[k].double() * d[k], atol=1e-3 * float(f.values[0]))
    assert torch.all(f.values[:-1] >= f.values[1:])
    # the top direction changes the styles more than any random unit direction (SeFa Eq. 5)
    r = torch.randn(64, d.shape[1], dtype=torch.float64)
    r = r / r.norm(dim=1, keepdim=True)
    assert (A @ d[0]).norm() >= (A @ r.T).norm(dim=0).max()


def test_style_layers_and_edits_touch_only_their_layers(G):
    layers = style_layers(G)
    assert layers[0].name == "conv_in" and layers[0].ws_index == 0
    assert {l.ws_index for l in layers} == set(range(G.num_ws))
    f = factorize(G, layers=[0, 1])
    ws = _ws(G, 0)
    edited = edit_ws(ws, f, 2, [-1.0, 0.0, 2.0])
    assert edited.shape == (3, G.num_ws, G.cfg.w_dim)
    assert torch.equal(edited[1], ws[0]) and torch.equal(edited[0, 2:], ws[0, 2:])
    step = (edited[2, 0] - ws[0, 0]) / 2
    assert torch.allclose(step.norm(), f.sigmas[2], rtol=1e-4)
    with pytest.raises(UsageError, match="does not exist"):
        edit_ws(ws, f, G.cfg.w_dim, [1.0])


# ---------------------------------------------------------------------------------------- mixing

def test_style_mix_layout_and_extremes(G):
    out = style_mix(G, [0, 1], [2, 3, 4], list(range(G.num_ws)), options=OFF)
    assert out.shape == (3 * 4, 3, 16, 16)
    assert torch.all(out[0] == -1)  # the blank corner
    # every layer from the column seed: each mix equals its column's image
    for r in range(2):
        assert torch.allclose(out[(r + 1) * 4 + 1:(r + 2) * 4], out[1:4], atol=1e-5)
    fine = style_mix(G, [0], [2], [G.num_ws - 1], options=OFF)  # only the last to-RGB: a small change
    assert not torch.allclose(fine[3], fine[2]) and (fine[3] - fine[2]).abs().mean() < (fine[1] - fine[2]).abs().mean()


class _NoStyles(torch.nn.Module):
    family, capabilities = "stub", frozenset({"shift"})


def test_mixing_and_projection_are_refused_without_the_capability():
    with pytest.raises(CapabilityError, match="style mixing needs a generator with per-layer styles; this is a stub"):
        style_mix(_NoStyles(), [0], [1], [0])
    with pytest.raises(CapabilityError, match="needs a generator with a mapping network"):
        project(_NoStyles(), torch.zeros(1, 3, 4, 4))
    with pytest.raises(CapabilityError, match="needs a generator with a mapping network"):
        factorize(_NoStyles())


# ---------------------------------------------------------------------------------------- videos

@pytest.mark.parametrize("kind", ["interp", "pan", "zoom", "rotate"])
def test_video_has_the_requested_frames_and_size(G, tmp_path, kind):
    cfg = VideoConfig(kind=kind, frames=7, fps=10, upscale=2)
    info = render_video([("a", G), ("b", G)], [0, 1, 2], cfg, tmp_path / "v.gif")
    cols = 1 if kind == "interp" else 3
    h, w = 2 + 2 * (32 + 2), 2 + cols * (32 + 2)  # 2 model rows of 16x16 renders shown 2x, 2-px gaps
    assert read_gif(tmp_path / "v.gif") == (7, (h, w)) and info["frames"] == 7
    with Image.open(tmp_path / "v.gif") as im:
        assert im.info["duration"] == 100


def test_pan_video_of_whole_pixels_moves_the_image(G, tmp_path):
    """Frame k of a pan by 16 px over 16 frames is the render on the grid shifted by k px."""
    cfg = VideoConfig(kind="pan", frames=16, pan=(0.0, 16.0), upscale=1)
    render_video([("a", G)], [0], cfg, tmp_path / "p.gif", options={"noise_mode": "off"})
    with Image.open(tmp_path / "p.gif") as im:
        im.seek(5)
        frame = np.asarray(im.convert("RGB"))[2:18, 2:18].astype(float)
    want = G.render(G.latents([0]), G.default_grid().shift(0, 5), OFF)
    want = ((want[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).detach().numpy()
    assert np.abs(frame - want).mean() < 3  # GIF quantisation only


def test_gif_writer_streams_and_loops(tmp_path):
    path = tmp_path / "s.gif"
    with GifWriter(path, fps=25) as gif:
        for k in range(5):
            gif.write(np.full((6, 9, 3), 40 * k, np.uint8))
            gif._file.flush()
            assert path.stat().st_size > 0  # written as it goes
    with Image.open(path) as im:
        assert (im.n_frames, im.size, im.info["loop"], im.info["duration"]) == (5, (9, 6), 0, 40)
        im.seek(3)
        assert np.asarray(im.convert("RGB"))[0, 0, 0] == 120


def test_slerp_and_zoom_about_centre():
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    u = a / a.norm(dim=1, keepdim=True)
    v = b / b.norm(dim=1, keepdim=True)
    assert torch.allclose(slerp(u, v, 0.3).norm(dim=1), torch.ones(3), atol=1e-5)
    g = zoom_about_centre(Grid(9, 9), 3.0)
    assert torch.allclose(g.coords()[:, 4, 4], torch.tensor([4.0, 4.0]))
    assert torch.allclose(g.coords()[0, 0, 1] - g.coords()[0, 0, 0], torch.tensor(1 / 3))


def test_video_interp_in_z_works_for_a_family_without_a_mapping(singan_run, tmp_path):
    from posgen.sampling import load

    S = load(str(singan_run))[0]
    info = render_video([("singan", S)], [0, 1], VideoConfig(kind="interp", frames=3, upscale=1),  # auto: z
                        tmp_path / "s.gif")
    assert info["frames"] == 3
    with pytest.raises(CapabilityError, match="a zoom video needs a generator that renders denser grids"):
        render_video([("singan", S)], [0], VideoConfig(kind="zoom", frames=2), tmp_path / "z.gif")


# ---------------------------------------------------------------------------------------- commands

def test_project_command_writes_its_outputs(trained_run, tmp_path):
    out = tmp_path / "proj"
    assert main(["project", "--checkpoint", str(trained_run), "--digit", "7", "--target-shift", "-2,3",
                 "--steps", "6", "--features", "none", "--out", str(out)]) == 0
    for name in ("latent.safetensors", "reconstruction.png", "trace.gif", "loss.jsonl", "summary.json"):
        assert (out / name).is_file()
    ws, meta = load_latent(out / "latent.safetensors")
    assert ws.shape == (1, 6, 16) and meta["digit"] == 7
    lines = (out / "loss.jsonl").read_text().splitlines()
    assert len(lines) == 6 and "mse" in json.loads(lines[0])
    assert Image.open(out / "reconstruction.png").size == (16, 16)
    # the projected latent can be edited
    assert main(["edit", "--checkpoint", str(trained_run), "--latent", str(out / "latent.safetensors"),
                 "--direction", "0-1", "--strengths=-2,0,2", "--shift", "0,3", "--out", str(tmp_path / "ed")]) == 0
    assert Image.open(tmp_path / "ed" / "direction001.png").size == (2 + 3 * 18, 2 + 18)


def test_edit_mix_video_commands(trained_run, trained_cips_run, tmp_path, capsys):
    assert main(["edit", "--checkpoint", str(trained_run), "--list", "3"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["direction"] for r in rows] == [0, 1, 2] and rows[0]["eigenvalue"] >= rows[1]["eigenvalue"]
    assert main(["mix", "--checkpoint", str(trained_cips_run), "--rows", "0-1", "--cols", "2-4", "--layers", "0-2",
                 "--zoom", "2", "--out", str(tmp_path / "m.png")]) == 0
    assert Image.open(tmp_path / "m.png").size == (2 + 4 * 34, 2 + 3 * 34)
    assert main(["video", "--checkpoint", str(trained_run), "--checkpoint", str(trained_cips_run), "--seeds", "0-1",
                 "--kind", "pan", "--frames", "4", "--out", str(tmp_path / "v.gif")]) == 0
    assert read_gif(tmp_path / "v.gif") == (4, (2 + 2 * 66, 2 + 2 * 66))


def _one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("posgen: error: ") and match in err, err


def test_bad_inputs_give_one_line_and_exit_2(trained_run, singan_run, tmp_path, capsys):
    run = str(trained_run)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    _one_line_error(capsys, ["project", "--checkpoint", run, "--image", str(junk), "--out", str(tmp_path / "o")],
                    "cannot read image")
    big = tmp_path / "big.png"
    Image.new("RGB", (20, 12)).save(big)
    _one_line_error(capsys, ["project", "--checkpoint", run, "--image", str(big), "--out", str(tmp_path / "o")],
                    "is 12x20; the canvas is 16x16")
    _one_line_error(capsys, ["project", "--checkpoint", run, "--out", str(tmp_path / "o")], "one of --image")
    _one_line_error(capsys, ["project", "--checkpoint", run, "--image", str(big), "--target-zoom", "2", "--out",
                             str(tmp_path / "o")], "transform a --digit")
    _one_line_error(capsys, ["video", "--checkpoint", str(singan_run), "--space", "w", "--out", str(tmp_path / "w.gif")],
                    "--space w needs a generator with a mapping network")
    _one_line_error(capsys, ["edit", "--checkpoint", run, "--direction", "16", "--out", str(tmp_path / "e")],
                    "--direction 16 does not exist; there are 16 directions")
    _one_line_error(capsys, ["edit", "--checkpoint", run, "--layers", "0,9", "--out", str(tmp_path / "e")],
                    "--layers 9 is out of range")
    _one_line_error(capsys, ["mix", "--checkpoint", run, "--layers", "12", "--out", str(tmp_path / "m.png")],
                    "--layers must name ws indices in 0-5")
    _one_line_error(capsys, ["video", "--checkpoint", run, "--frames", "0", "--out", str(tmp_path / "v.gif")],
                    "--frames must be positive")
    _one_line_error(capsys, ["video", "--checkpoint", run, "--out", str(tmp_path / "v.mp4")], "written as .gif")
    # a family without the capability
    sg = str(singan_run)
    _one_line_error(capsys, ["project", "--checkpoint", sg, "--image", str(big), "--out", str(tmp_path / "o")],
                    "needs a generator with a mapping network")
    _one_line_error(capsys, ["mix", "--checkpoint", sg, "--out", str(tmp_path / "m.png")],
                    "needs a generator with per-layer styles")
    _one_line_error(capsys, ["edit", "--checkpoint", sg, "--list", "3"], "needs a generator with a mapping network")
    _one_line_error(capsys, ["video", "--checkpoint", sg, "--kind", "rotate", "--out", str(tmp_path / "r.gif")],
                    "a rotate video needs a generator that renders on rotated grids")
    _one_line_error(capsys, ["project", "--checkpoint", sg, "--digit", "1", "--out", str(tmp_path / "o")],
                    "needs a generator with a mapping network")


# ---------------------------------------------------------------------------------------- the experiment

def test_digit_targets_shift_roll_and_zoom(trained_run):
    from posgen.apps.inversion import digit_image, heldout_targets
    from posgen.sampling import load

    data = load(str(trained_run)).config.data
    a = digit_image(data, 3)
    assert a.shape == (1, 3, 16, 16) and a.max() > 0 and a.min() == -1
    b = digit_image(data, 3, (4, -3))
    assert torch.equal(b[0, :, 4:, :-3], a[0, :, :-4, 3:]) and torch.all(b[0, :, :4] == -1)
    assert torch.equal(digit_image(data, 3, (4, -3), roll=True), torch.roll(a, (4, -3), dims=(2, 3)))
    z = digit_image(data, 3, zoom=2)  # the top-left quarter drawn twice as large
    lit = (z[0].amax(dim=0) > -0.9).nonzero()
    assert lit[:, 0].max() > 8 and lit[:, 1].max() > 8
    with pytest.raises(DataError, match="there are 1797 digits"):
        digit_image(data, 5000)
    targets, picks = heldout_targets(data, count=3)
    assert set(targets) == {"train", "shift8", "shift16", "roll-8", "zoom2"} and len(picks) == 3
    assert all(v.shape == (3, 3, 16, 16) for v in targets.values())


def test_inversion_experiment_runs_and_tabulates(trained_run, tmp_path):
    from posgen.apps.inversion import ExperimentSettings, inversion_experiment, inversion_table

    settings = ExperimentSettings(models=(str(trained_run),), count=2, steps=3, grid_count=1)
    settings.projection.w_avg_samples = 100
    record = inversion_experiment(tmp_path, settings, progress=False)
    per = record["models"][str(trained_run)]
    assert {"psnr", "ink_psnr", "feature", "grid_psnr", "grid_found"} <= set(per["shift8"])
    assert (tmp_path / "inversion.png").is_file()
    assert json.loads((tmp_path / "inversion.json").read_text())["glyphs"] == record["glyphs"]
    table = inversion_table(record)
    assert table.count("\n") == 3 and "(w + grid)" in table
