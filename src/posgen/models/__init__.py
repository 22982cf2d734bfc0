"""Generator and discriminator families, one file per paper family.

`GENERATORS` maps a family name (the `family` key of a run config) to its config dataclass and
generator class; `build_generator` constructs the generator a model config describes.
"""
from posgen.models import cips, stylegan2
from posgen.models.cips import CIPSConfig
from posgen.models.discriminator import Discriminator, DiscriminatorConfig
from posgen.models.stylegan2 import Generator, StyleGAN2Config

ModelConfig = StyleGAN2Config | CIPSConfig
AnyGenerator = stylegan2.Generator | cips.Generator

GENERATORS: dict[str, tuple[type[ModelConfig], type[AnyGenerator]]] = {
    "stylegan2": (StyleGAN2Config, stylegan2.Generator),
    "cips": (CIPSConfig, cips.Generator),
}


def family_of(cfg: ModelConfig) -> str:
    """The `GENERATORS` name of a model config."""
    for name, (config_cls, _) in GENERATORS.items():
        if type(cfg) is config_cls:
            return name
    raise TypeError(f"not a generator config: {type(cfg).__name__}")


def build_generator(cfg: ModelConfig) -> AnyGenerator:
    """The (freshly initialised) generator of the family that `cfg` configures."""
    return GENERATORS[family_of(cfg)][1](cfg)


__all__ = ["GENERATORS", "AnyGenerator", "CIPSConfig", "Discriminator", "DiscriminatorConfig", "Generator",
           "ModelConfig", "StyleGAN2Config", "build_generator", "family_of"]
