"""CIPS as a model family: config dispatch, training, checkpoints, rendering in chunks and the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from conftest import tiny_run
from posgen import sampling
from posgen.cli import main
from posgen.config import ConfigError, apply_overrides
from posgen.families import FAMILIES, build_generator, run_config_from_dict
from posgen.grid import Grid
from posgen.models import CIPSConfig, StyleGAN2Config, cips, stylegan2
from posgen.presets import PRESETS, get_preset
from posgen.pretrained import pretrained_path
from posgen.sampling import load, render_seeds
from posgen.training.loop import build_trainer

CIPS_PRESETS = ["digits-cips", "digits-cips-ne", "ffhq256-cips"]


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


@pytest.fixture
def tile_sizes(monkeypatch):
    """Points per pass of every CIPS render in this test."""
    sizes = []
    render = cips.Generator._render

    def counting(self, ws, coords):
        sizes.append(coords[0].numel())
        return render(self, ws, coords)

    monkeypatch.setattr(cips.Generator, "_render", counting)
    return sizes


# ---- config dispatch -----------------------------------------------------------------------

def test_every_preset_round_trips_through_json_with_its_family():
    for name in PRESETS:
        cfg = get_preset(name)
        data = json.loads(cfg.to_json())
        assert data["family"] == cfg.family and isinstance(cfg.model, FAMILIES[cfg.family].model_config)
        assert run_config_from_dict(data) == cfg, name
        if cfg.family != "singan":  # a SinGAN's pyramid comes from its training image: built by its trainer
            assert isinstance(build_generator(tiny_run(name)), FAMILIES[cfg.family].generator), name


def test_cips_presets_follow_the_paper():
    for name in CIPS_PRESETS:
        cfg = get_preset(name)
        assert cfg.family == "cips" and cfg.train.style_mixing == 0, name  # trained without mixing (App. D)
    assert get_preset("digits-cips-ne").model == CIPSConfig(**{**vars(get_preset("digits-cips").model), "embedding": False})
    ffhq = get_preset("ffhq256-cips")
    assert ffhq.model == CIPSConfig(resolution=256)  # 14 ModFC layers of width 512, 512 + 512 encoding channels
    assert (ffhq.model.num_layers, ffhq.model.width, ffhq.model.fourier_channels, ffhq.model.embedding_channels) == (
        14, 512, 512, 512)
    assert ffhq.train.lr == 2e-3 and ffhq.train.betas == (0.0, 0.99) and ffhq.train.batch_size == 16


def test_a_checkpoint_without_a_family_key_loads_as_stylegan2(tmp_path):
    """Checkpoints written before CIPS existed have no "family" in their config."""
    from safetensors.torch import load_file, save_file
    path = pretrained_path("digits-mspe")
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    del config["family"]
    metadata["config"] = json.dumps(config)
    metadata.pop("sha256", None)  # the digest covers the config it was written with
    legacy = tmp_path / "legacy.safetensors"
    save_file(load_file(str(path)), str(legacy), metadata=metadata)
    G, cfg, _ = load(str(legacy))
    assert cfg.family == "stylegan2" and isinstance(cfg.model, StyleGAN2Config)
    assert type(G) is stylegan2.Generator
    assert torch.equal(render_seeds(G, [0]), render_seeds(load(str(path))[0], [0]))


def test_overrides_reach_the_cips_config_and_bad_ones_fail_in_one_line():
    cfg = apply_overrides(get_preset("digits-cips"), ["model.width=64", "model.embedding_boundary=wrap"])
    assert isinstance(cfg.model, CIPSConfig) and cfg.model.width == 64 and cfg.model.embedding_boundary == "wrap"
    G = build_generator(cfg)
    assert G.input.out_channels == 64 and G.embedding.boundary == ("wrap", "wrap")
    for preset, bad, msg in [("digits-cips", "model.channel_max=32", "unknown field"),
                             ("digits-cips", "model.num_layers=5", "even"),
                             ("digits-cips", "family=dcgan", "the family comes with the preset"),
                             ("digits-mspe", "family=cips", "the family comes with the preset")]:
        with pytest.raises(ConfigError, match=msg) as e:
            apply_overrides(get_preset(preset), [bad])
        assert "\n" not in str(e.value)


# ---- training --------------------------------------------------------------------------------

def test_style_mixing_splits_the_cips_ws_at_a_cutoff():
    trainer = build_trainer(tiny_run("digits-cips", "train.style_mixing=1"), seed=0)
    ws, z = trainer._ws(0)
    assert ws.shape == (4, trainer.G.num_ws, 16) and z.shape == (4, 16)
    changes = (ws[:, 1:] != ws[:, :-1]).any(dim=(0, 2))  # [num_ws - 1]: where the second w starts
    assert changes.sum() == 1
    stats = trainer.train_step()
    assert all(np.isfinite(v) for v in stats.values())


def test_cips_run_round_trips_through_checkpoint_and_generate(trained_cips_run, tmp_path):
    assert json.loads((trained_cips_run / "config.json").read_text())["family"] == "cips"
    G, cfg, state = load(str(trained_cips_run))
    assert type(G) is cips.Generator and cfg.name == "digits-cips" and state["step"] == 4 and not G.training
    base, shifted, wide = (tmp_path / d for d in ("base", "shifted", "wide"))
    for out, extra in ((base, []), (shifted, ["--shift", "3,-5"]), (wide, ["--size", "16x40"])):
        assert main(["generate", "--checkpoint", str(trained_cips_run), "--seeds", "0,5", "--out", str(out), *extra]) == 0
    a, b, w = (_png(d / "seed0005.png") for d in (base, shifted, wide))
    assert a.shape == b.shape == (16, 16, 3) and w.shape == (16, 40, 3)
    # pixels are independent and the encodings anchored to the canvas: shifts and wider canvases
    # show the same pixels moved or extended (up to uint8 rounding)
    assert np.abs(b[3:, :-5] - a[:-3, 5:]).max() <= 1 and np.abs(w[:, :16] - a).max() <= 1
    assert a.std() > 0 and not np.array_equal(w[:, 16:32], a)


# ---- rendering in chunks ---------------------------------------------------------------------

def test_generate_chunk_points_equals_the_one_shot_render(trained_cips_run, tmp_path, tile_sizes):
    for out, extra in (("one", []), ("chunked", ["--chunk-points", "7"])):
        tile_sizes.clear()
        assert main(["generate", "--checkpoint", str(trained_cips_run), "--seeds", "0-2", "--size", "13x21",
                     "--out", str(tmp_path / out), *extra]) == 0
        assert max(tile_sizes) == (7 if extra else 13 * 21) and sum(tile_sizes) == 13 * 21
    for seed in range(3):
        one, chunked = (_png(tmp_path / d / f"seed{seed:04d}.png") for d in ("one", "chunked"))
        assert np.abs(one - chunked).max() <= 1 and (one == chunked).mean() > 0.99


def test_large_cips_canvases_render_in_chunks_by_default(trained_cips_run, tile_sizes, monkeypatch):
    G, _, _ = load(str(trained_cips_run))
    grid = Grid(16, 16).center_crop_resize(30, 50)
    one_shot = render_seeds(G, [0, 1], grid, chunk_points=30 * 50)
    monkeypatch.setattr(sampling, "DEFAULT_CHUNK_POINTS", 100)
    tile_sizes.clear()
    chunked = render_seeds(G, [0, 1], grid)
    assert max(tile_sizes) == 100 and sum(tile_sizes) == 30 * 50
    assert torch.allclose(chunked, one_shot, atol=1e-5)


def test_chunk_points_on_a_stylegan2_checkpoint_is_a_one_line_error(trained_run, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(trained_run), "--chunk-points", "64", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--chunk-points" in err[0] and "stylegan2" in err[0]
    assert not list(tmp_path.iterdir())
    G, _, _ = load(str(trained_run))
    with pytest.raises(ValueError, match="chunk_points"):
        G(torch.randn(1, 16), chunk_points=64)


# ---- evaluate / info -------------------------------------------------------------------------

def test_evaluate_and_info_accept_a_cips_run(trained_cips_run, capsys):
    assert main(["evaluate", "--checkpoint", str(trained_cips_run), "--metrics", "fid,eqt", "--num-samples", "16",
                 "--eq-samples", "2", "--batch-size", "8", "--no-cache"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["preset"] == "digits-cips" and rec["results"]["fid"]["fid"] > 0
    assert float(rec["results"]["eqt"]["eqt"]) > 80  # whole-pixel shifts move a CIPS image exactly
    assert main(["info", str(trained_cips_run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["family"] == "cips" and info["progress"]["complete"] is True
