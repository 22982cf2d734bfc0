"""Denoising diffusion (Ho et al.; Choi et al. Sec. 4.5, App. B): the noise schedule, the forward
process q_sample, the eps-prediction loss and the DDPM / DDIM samplers, kept apart from the U-Net
(`posgen.models.unet`). Pure torch; written here instead of importing diffusers (not a dependency:
it is not installed and imports in about 7 s)."""
from posgen.diffusion.process import (
    SAMPLERS,
    GaussianDiffusion,
    latent_generators,
    linear_betas,
    randn_like,
    timesteps,
)

__all__ = ["SAMPLERS", "GaussianDiffusion", "latent_generators", "linear_betas", "randn_like", "timesteps"]
