"""Generator and discriminator families, one file per paper family, each implementing the
contract of `posgen.models.base`. The family table that names them is `posgen.families.FAMILIES`."""
from posgen.models.base import CAPABILITIES, Generator, MappedGenerator, RenderOptions, require
from posgen.models.cips import CIPSConfig
from posgen.models.discriminator import Discriminator, DiscriminatorConfig
from posgen.models.stylegan2 import StyleGAN2Config

__all__ = ["CAPABILITIES", "CIPSConfig", "Discriminator", "DiscriminatorConfig", "Generator", "MappedGenerator",
           "RenderOptions", "StyleGAN2Config", "require"]
