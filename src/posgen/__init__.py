"""posgen: spatially unbiased image generators that render on explicit coordinate grids.

    import posgen
    G, config, state = posgen.load("runs/digits-mspe")
    images = posgen.render_seeds(G, [0, 1, 2], posgen.Grid(32, 64).shift(0, 8.5))

The names below load on first use, so that `posgen presets` and `posgen --help` start without torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
_EXPORTS = {"Canvas": "posgen.grid", "Grid": "posgen.grid", "PointGrid": "posgen.grid", "load": "posgen.sampling",
            "make_sample_fn": "posgen.sampling", "render_seeds": "posgen.sampling", "seed_latents": "posgen.sampling"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'posgen' has no attribute {name!r}")
