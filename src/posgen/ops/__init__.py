"""Building blocks shared by the generators: equalized layers, the mapping network, modulated
convolution, resampling filters, position-aligned noise. Pure PyTorch."""
from posgen.ops.equalized import EqualConv2d, EqualLinear, lrelu_gain
from posgen.ops.mapping import MappingNetwork, normalize_2nd_moment
from posgen.ops.modconv import ModulatedConv2d, ToRGB
from posgen.ops.noise import NoiseInput, lattice_noise
from posgen.ops.resample import blur_downsample, center_crop, upsample2x

__all__ = [
    "EqualConv2d", "EqualLinear", "MappingNetwork", "ModulatedConv2d", "NoiseInput", "ToRGB",
    "blur_downsample", "center_crop", "lattice_noise", "lrelu_gain", "normalize_2nd_moment", "upsample2x",
]
