"""Tiny configurations shared by the tests (16x16 canvases, a few channels: fast on CPU)."""
from __future__ import annotations

import pytest
import torch

from posgen.config import RunConfig, apply_overrides
from posgen.models import StyleGAN2Config
from posgen.presets import get_preset

VARIANTS = {
    "baseline": dict(),
    "sspe": dict(input="sinusoid"),
    "mspe": dict(input="sinusoid", scale_encoding="sinusoid"),
    "mspe-nopad": dict(input="sinusoid", scale_encoding="sinusoid", padding="none"),
    "csg-nopad": dict(input="cartesian", padding="none"),
    "csg-ms-nopad": dict(input="cartesian", scale_encoding="cartesian", padding="none"),
    "const-ms": dict(input="constant", scale_encoding="constant"),
    "transposed": dict(input="sinusoid", upsample="transposed"),
}


def tiny_model(resolution: int = 16, **kw) -> StyleGAN2Config:
    return StyleGAN2Config(resolution=resolution, z_dim=16, w_dim=16, mapping_layers=2, channel_base=8 * resolution,
                           channel_max=16, **kw)


TINY_MODEL = {  # per generator family: 16 channels, the fewest layers
    "stylegan2": ["model.channel_base=128", "model.channel_max=16"],
    "cips": ["model.width=16", "model.num_layers=4", "model.fourier_channels=8", "model.embedding_channels=8"],
    "stylegan3": ["model.channel_base=256", "model.channel_max=16", "model.num_layers=4", "model.margin=4"],
}


# the preset each family's contract suite (tests/test_contract.py) shrinks with tiny_run
TINY_PRESET = {"stylegan2": "digits-mspe", "cips": "digits-cips", "singan": "singan-pad", "ddpm": "digits-ddpm-mspe", "dcgan": "digits-dcgan-nopad-spe",
               "stylegan3": "digits-sg3t"}

# families whose tiny run is not the shared one above: SinGAN (china.jpg at 22x32, 2 scales, 8 channels, one
# iteration per scale) and DCGAN (no mapping network)
TINY_OWN_RUN = {
    "singan": ["model.max_size=32", "model.min_size=16", "model.scale_factor=0.6", "model.channels=8",
               "model.max_channels=8", "train.iters_per_scale=1", "train.d_steps=1", "train.g_steps=1",
               "train.sample_seeds=4", "train.threads=0"],
    # DDPM: 16x16 digits, widths 8/16, T = 20 (every sampler is a few network calls)
    "ddpm": ["model.resolution=16", "model.channels=8", "model.channel_mult=[1,2]", "model.num_res_blocks=1",
             "model.norm_groups=4", "model.timesteps=20", "model.ddpm_steps=20", "model.ddim_steps=3",
             "data.digits.canvas=[16,16]", "data.digits.region=[0,0,8,8]", "train.batch_size=4", "train.kimg=0.016",
             "train.snapshot_kimg=0.008", "train.sample_seeds=4", "train.sample_steps=2", "train.threads=0"],
    "dcgan": ["model.resolution=16", "discriminator.resolution=16", "model.z_dim=16", "model.channel_base=128",
              "model.channel_max=16", "discriminator.channel_base=128", "discriminator.channel_max=16",
              "data.digits.canvas=[16,16]", "data.digits.region=[0,0,8,8]", "train.batch_size=4", "train.kimg=0.016",
              "train.snapshot_kimg=0.008", "train.r1_interval=2", "train.sample_seeds=4", "train.threads=0"],
}


def tiny_run(preset: str = "digits-mspe", *extra: str) -> RunConfig:
    """A preset shrunk to 16x16 digits and 16 channels; `extra` are more key=value overrides."""
    cfg = get_preset(preset)
    if cfg.family in TINY_OWN_RUN:
        return apply_overrides(cfg, [*TINY_OWN_RUN[cfg.family], *extra])
    return apply_overrides(cfg, [
        "model.resolution=16", "discriminator.resolution=16", "model.z_dim=16", "model.w_dim=16",
        "model.mapping_layers=2", *TINY_MODEL[cfg.family],
        "discriminator.channel_base=128", "discriminator.channel_max=16",
        "data.digits.canvas=[16,16]", "data.digits.region=[0,0,8,8]",
        "train.batch_size=4", "train.kimg=0.016", "train.snapshot_kimg=0.008", "train.r1_interval=2",
        "train.sample_seeds=4", "train.threads=0", *extra,
    ])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A 4-step digits-mspe run: a real checkpoint for CLI / loading tests."""
    from posgen.training.loop import train

    out = tmp_path_factory.mktemp("run") / "mspe"
    train(tiny_run(), out, seed=1, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_cips_run(tmp_path_factory):
    """A 4-step digits-cips run."""
    from posgen.training.loop import train

    out = tmp_path_factory.mktemp("run") / "cips"
    train(tiny_run("digits-cips"), out, seed=1, progress=False)
    return out
