"""Improved precision and recall (Kynkäänniemi et al. 2019) with k = 3.

Each feature set approximates its manifold by the union of balls around its samples, the
radius of a ball being the distance to the sample's k-th nearest neighbour within its own
set. Precision = fraction of generated samples inside the real manifold; recall = fraction
of real samples inside the generated manifold.
"""
from __future__ import annotations

import numpy as np
import torch


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(x: torch.Tensor, k: int, batch_size: int = 1024) -> torch.Tensor:
    """Distance from each row of x [N, D] to its k-th nearest other row: [N]."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, got {len(x)}")
    # the smallest distance of a row is the one to itself (0), so take the (k+1)-th smallest
    return torch.cat([_distances(x[i:i + batch_size], x).kthvalue(k + 1, dim=1).values
                      for i in range(0, len(x), batch_size)])


def coverage_fraction(manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor,
                      batch_size: int = 1024) -> float:
    """Fraction of `queries` within radius of at least one `manifold` sample."""
    inside = [(_distances(queries[i:i + batch_size], manifold) <= radii[None]).any(dim=1)
              for i in range(0, len(queries), batch_size)]
    return float(torch.cat(inside).double().mean())


def precision_recall(fake: np.ndarray, real: np.ndarray, *, k: int = 3) -> dict:
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    precision = coverage_fraction(r, knn_radii(r, k), f)
    recall = coverage_fraction(f, knn_radii(f, k), r)
    return {"precision": precision, "recall": recall, "pr_k": k}
