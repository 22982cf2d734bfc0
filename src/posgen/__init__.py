"""posgen: spatially unbiased image generators that render on explicit coordinate grids.

    import posgen
    G, config, state = posgen.load("runs/digits-mspe")
    images = posgen.render_seeds(G, [0, 1, 2], posgen.Grid(32, 64).shift(0, 8.5))
"""
from posgen.grid import Grid, PointGrid
from posgen.sampling import load, make_sample_fn, render_seeds, seed_latents

__version__ = "0.1.0"
__all__ = ["Grid", "PointGrid", "load", "make_sample_fn", "render_seeds", "seed_latents"]
