"""DDPM runs end to end: exact resume of the trainer, stochastic reconstruction, the CLI's
--steps / --sampler and `posgen reconstruct`."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_run
from posgen import checkpoint
from posgen.apps.reconstruct import (ReconstructionSettings, input_digits, placement_stats, reconstruct,
                                     reconstruction_study)
from posgen.cli import main
from posgen.errors import CapabilityError
from posgen.families import build_generator
from posgen.training.loop import train


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm") / "run"
    train(tiny_run("digits-ddpm-mspe", "train.kimg=0.016"), out, seed=3, progress=False)
    return out


def test_resume_continues_exactly(ddpm_run, tmp_path):
    half = tmp_path / "half"
    train(tiny_run("digits-ddpm-mspe", "train.kimg=0.008"), half, seed=3, progress=False)
    tensors, cfg, state = checkpoint.load(half)
    assert state["step"] == 2
    data = cfg.to_dict()
    data["train"]["kimg"] = 0.016  # the resumed run's target, as in the uninterrupted one
    (half / "config.json").write_text(json.dumps(data))
    from posgen.families import run_config_from_dict

    checkpoint.save(half / checkpoint.CHECKPOINT_NAME, tensors, run_config_from_dict(data), state)
    train(None, half, resume=True, progress=False)
    a, _, sa = checkpoint.load(ddpm_run)
    b, _, sb = checkpoint.load(half)
    assert sa["step"] == sb["step"] == 4
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = [json.loads(line) for line in (ddpm_run / "stats.jsonl").read_text().splitlines()]
    assert all("loss/eps" in line for line in lines)


def test_a_fresh_network_reconstructs_at_t_1_and_results_follow_the_seed(tmp_path):
    G = build_generator(tiny_run("digits-ddpm-mspe")).eval()  # zero-initialised output: predicts eps = 0
    settings = ReconstructionSettings(num_images=3, region=(8, 8, 8, 8))
    x = input_digits(settings, (16, 16))
    assert x.shape == (3, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    out = reconstruct(G, x, 1)
    assert torch.allclose(out, x, atol=0.05)  # x_1 keeps sqrt(1 - 1e-4) of x_0 and 1 % noise
    a = reconstruct(G, x, 15, stride=5, seed=1)
    assert torch.equal(a, reconstruct(G, x, 15, stride=5, seed=1))
    assert not torch.allclose(a, reconstruct(G, x, 15, stride=5, seed=2))
    stats = placement_stats(x, x, (8, 8, 8, 8), (0, 0, 8, 8))
    assert stats["in_input_region"] == pytest.approx(1.0) and stats["in_training_region"] == 0.0
    assert stats["iou"] == pytest.approx(1.0) and 8 <= stats["center_y"] <= 16 and 8 <= stats["center_x"] <= 16
    with pytest.raises(ValueError, match="t must be in 1..20"):
        reconstruct(G, x, 21)
    base = build_generator(tiny_run("digits-ddpm-mspe", "model.positional_encoding=none")).eval()
    with pytest.raises(CapabilityError, match="^--shift needs a generator that renders on shifted grids; b is a ddpm"):
        reconstruction_study({"b": base}, tmp_path, ReconstructionSettings(times=(2,), shift=(1, 1), region=(8, 8, 8, 8)), progress=False)


def test_cli_generate_steps_sampler_and_reconstruct(ddpm_run, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(ddpm_run), "--seeds", "0-1", "--steps", "3", "--sampler", "ddim",
                 "--shift", "2,3", "--size", "16x24", "--out", str(out)]) == 0
    assert (out / "seed0001.png").is_file()
    assert main(["generate", "--checkpoint", str(ddpm_run), "--seeds", "0", "--truncation", "0.5",
                 "--out", str(out)]) == 2
    assert "--truncation needs a generator with a mapping network" in capsys.readouterr().err
    rec = tmp_path / "rec"
    assert main(["reconstruct", "--checkpoint", str(ddpm_run), "--out", str(rec), "--times", "5,10",
                 "--num-images", "2", "--region", "8,8,8,8", "--stride", "2", "--shift", "2,-3"]) == 0
    record = json.loads((rec / "reconstruction.json").read_text())
    assert set(record["models"]["digits-ddpm-mspe"]) == {"5", "10"}
    assert (rec / "reconstruction.png").is_file() and (rec / "reconstruction-placement.png").is_file()


def test_cli_refuses_steps_for_gans_and_reconstruct_for_non_ddpm(trained_run, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(trained_run), "--seeds", "0", "--steps", "5",
                 "--out", str(tmp_path / "g")]) == 2
    assert "--steps/--sampler needs an iterative sampler (ddpm)" in capsys.readouterr().err
    assert main(["reconstruct", "--checkpoint", str(trained_run), "--out", str(tmp_path / "r")]) == 2
    assert "reconstruct needs ddpm models" in capsys.readouterr().err
