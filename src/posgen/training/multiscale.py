"""The MS-PIE scale sampler (Xu et al. Sec. 3.5): one canvas size per iteration, drawn with
the configured probabilities (honoured, unlike a uniform draw that ignores them), from a
stream that depends only on (seed, step) so a resumed run draws the same sizes."""
from __future__ import annotations

import torch



def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """An independent RNG for one (seed, step, stream): training randomness that resumes exactly."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) * 16 + stream)
    return g


class MultiScaleSampler:
    def __init__(self, sizes: tuple[int, ...], probs: tuple[float, ...] | None = None, seed: int = 0) -> None:
        if not sizes:
            raise ValueError("MultiScaleSampler needs at least one size")
        self.sizes = tuple(int(s) for s in sizes)
        p = torch.tensor(probs if probs is not None else [1.0] * len(sizes), dtype=torch.float64)
        if len(p) != len(self.sizes) or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"bad scale probabilities {probs} for sizes {sizes}")
        self.probs = p / p.sum()
        self.seed = seed

    def __call__(self, step: int) -> int:
        """The canvas size for training step `step`."""
        k = torch.multinomial(self.probs, 1, generator=step_generator(self.seed, step, stream=7)).item()
        return self.sizes[k]
