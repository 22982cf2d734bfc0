"""The family table: every generator family posgen has, by name, and what builds it.

`FAMILIES[name]` says which dataclass each section of a run config is, which generator class
renders, which discriminator (if any) and which trainer trains it. Everything that reads a
config, builds a generator or starts a trainer goes through this one dict.

Adding a family (see README, "Adding a family"): write `models/<family>.py` (a config
dataclass and a `posgen.models.base.Generator` subclass declaring its capabilities), its
trainer (`training/<family>.py`, the `posgen.training.loop.Trainer` protocol, with a
`posgen.training.config.TrainConfig` subclass), one row here, and presets in
`posgen.presets`. The contract suite (tests/test_contract.py) then runs for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posgen.config import RunConfig, parse_run_config
from posgen.errors import ConfigError
from posgen.models import cips, dcgan, discriminator, singan, stylegan2, stylegan3, unet
from posgen.models.base import Generator
from posgen.training.config import DDPMTrainConfig, GANTrainConfig
from posgen.training.ddpm import DDPMTrainer
from posgen.training.gan import GANTrainer
from posgen.training.singan import SinGANTrainConfig, SinGANTrainer


@dataclass(frozen=True)
class Family:
    model_config: type                 # the model section's dataclass
    generator: type[Generator]         # built from the whole run config by `generator.build(run)`
    train_config: type                 # the train section's dataclass (a TrainConfig)
    trainer: type                      # posgen.training.loop.Trainer: trainer(run, family, seed=, device=)
    discriminator_config: type | None  # the discriminator section's dataclass; None: no discriminator
    discriminator: type | None         # its module, built as discriminator(run.discriminator)
    summary: str


FAMILIES: dict[str, Family] = {
    "stylegan2": Family(stylegan2.StyleGAN2Config, stylegan2.Generator, GANTrainConfig, GANTrainer,
                        discriminator.DiscriminatorConfig, discriminator.Discriminator,
                        "StyleGAN2 with explicit positional encodings (baseline, SS-PE, MS-PE, padding-free, CSG)"),
    "cips": Family(cips.CIPSConfig, cips.Generator, GANTrainConfig, GANTrainer,
                   discriminator.DiscriminatorConfig, discriminator.Discriminator,
                   "CIPS: conditionally-independent pixel synthesis (per-pixel ModFC MLP)"),
    "dcgan": Family(dcgan.DCGANConfig, dcgan.Generator, GANTrainConfig, GANTrainer,
                    discriminator.DiscriminatorConfig, discriminator.Discriminator,
                    "DCGAN (linear input, upsample + conv) with or without padding, + SPE / CSG (Xu Tab. 3-4)"),
    "stylegan3": Family(stylegan3.StyleGAN3Config, stylegan3.Generator, GANTrainConfig, GANTrainer,
                        discriminator.DiscriminatorConfig, discriminator.Discriminator,
                        "StyleGAN3-T / -R: alias-free generator, Fourier-feature input on the grid, filtered non-linearities"),
    "singan": Family(singan.SinGANConfig, singan.Generator, SinGANTrainConfig, SinGANTrainer, None, None,
                     "SinGAN from one image, padded or padding-free, with position-aligned noise (Xu Sec. 3.6)"),
    "ddpm": Family(unet.UNetConfig, unet.DDPM, DDPMTrainConfig, DDPMTrainer, None, None,
                   "DDPM: U-Net denoiser, baseline or with MS-PE (Choi Sec. 4.5); DDPM / DDIM sampling"),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; posgen has {', '.join(FAMILIES)}")
    return FAMILIES[name]


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """`RunConfig.to_dict` inverted through the family table. Configs written before there were
    families carry no `family` key: they are StyleGAN2 ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: must be a JSON object, got {type(data).__name__}")
    data = {"family": "stylegan2", **data}
    if not isinstance(data["family"], str) or data["family"] not in FAMILIES:
        raise ConfigError(f"config.family: must be one of {', '.join(map(repr, FAMILIES))}; got {data['family']!r}")
    f = FAMILIES[data["family"]]
    run = parse_run_config(data, {"model": f.model_config, "train": f.train_config,
                                  "discriminator": f.discriminator_config})
    run.validate()
    return run


def build_generator(run: RunConfig) -> Generator:
    """The (freshly initialised) generator that run config `run` describes."""
    return family(run.family).generator.build(run)


def build_discriminator(run: RunConfig):
    """The discriminator of a run, or None for families without one."""
    f = family(run.family)
    return None if f.discriminator is None else f.discriminator(run.discriminator)
