"""Metrics. Each takes a sample_fn(batch_size, seed, grid) -> images in [-1, 1] plus options,
and returns a JSON-able dict. METRICS maps the CLI name to the function."""
from posgen.metrics.shift_consistency import shift_consistency

METRICS = {"shift-consistency": shift_consistency}

__all__ = ["METRICS", "shift_consistency"]
