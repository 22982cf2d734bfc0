"""Training batches read ahead: a torch DataLoader whose batch for training step k holds the indices
the trainer's deterministic draw gives step k, decoded by worker processes while the step before
still trains (and put in pinned memory for a fast copy to the GPU). In-memory data (the biased
digits, already a uint8 tensor) needs none of this and is indexed directly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count

import torch
from torch.utils.data import DataLoader, Dataset

from posgen.errors import DataError


class _StepIndices:
    """The DataLoader's batch sampler: the index list of each step from `start` on."""

    def __init__(self, indices: Callable[[int], torch.Tensor], start: int) -> None:
        self.indices, self.start = indices, start

    def __iter__(self) -> Iterator[list[int]]:
        return (self.indices(k).tolist() for k in count(self.start))


class StepBatches:
    """`batch(k)` -> uint8 [n, C, H, W]: the images `indices(k)` names, for consecutive steps k.

    `indices(k)` must be a pure function of k (it runs ahead of the training loop). `workers` > 0
    decodes in that many processes with two batches in flight each; 0 decodes in this process.
    A step out of sequence (a resume) restarts the reading there.
    """

    def __init__(self, dataset: Dataset, indices: Callable[[int], torch.Tensor], workers: int = 0,
                 pin_memory: bool = False) -> None:
        self.dataset, self.indices, self.workers, self.pin_memory = dataset, indices, workers, pin_memory
        self._next: int | None = None
        self._it: Iterator[torch.Tensor] | None = None

    def batch(self, step: int) -> torch.Tensor:
        images = getattr(self.dataset, "images", None)
        if images is not None:  # in memory
            return images[self.indices(step)]
        if self._next != step:
            loader = DataLoader(self.dataset, batch_sampler=_StepIndices(self.indices, step), num_workers=self.workers,
                                pin_memory=self.pin_memory, persistent_workers=False)
            self._it = iter(loader)
        self._next = step + 1
        try:
            return next(self._it)
        except DataError as e:  # from a worker: "Caught DataError in DataLoader worker ..." + its traceback
            self._next = None
            raise DataError(str(e).strip().splitlines()[-1].removeprefix("posgen.errors.DataError: ")) from None
