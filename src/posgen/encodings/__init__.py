"""Positional encodings: pure functions of coordinates, computed on the fly.

Each encoding has `out_channels` and `forward(coords)`, where coords are [2, H, W] or
[N, 2, H, W] (channels x, y) for lattices, or [2, P] / [N, 2, P] for point sets, and the
result is [N, C, H, W] (or [N, C, P]); unbatched coords give N = 1.
"""
from posgen.encodings.cartesian import CartesianGrid
from posgen.encodings.fourier import FourierFeatures
from posgen.encodings.learned import LearnedConstant
from posgen.encodings.sinusoidal import SinusoidalEncoding

__all__ = ["CartesianGrid", "FourierFeatures", "LearnedConstant", "SinusoidalEncoding"]
