"""Generator and discriminator families, one file per paper family."""
from posgen.models.cips import CIPSConfig
from posgen.models.discriminator import Discriminator, DiscriminatorConfig
from posgen.models.stylegan2 import Generator, StyleGAN2Config

__all__ = ["CIPSConfig", "Discriminator", "DiscriminatorConfig", "Generator", "StyleGAN2Config"]
