"""Multi-process training through `torchrun` (torch.distributed): which rank this process is, which
share of the global batch it computes, and the one collective that keeps the ranks in step.

    torchrun --standalone --nproc_per_node=8 -m posgen train --preset ffhq256-mspe --device cuda

The design is data parallelism without a wrapper: every rank builds the same networks from the
same seed, draws the *global* batch's random numbers from the step's deterministic generators
(`posgen.training.multiscale.step_generator`) and keeps its own rows (`Ranks.shard`), so the union
over ranks is the single-process batch whatever the number of ranks. After each backward pass
`Ranks.reduce` averages the gradients (and the loss, so that every rank sees a non-finite loss
anywhere) in one all-reduce: this works with R1's double backward and lazy regularisation, where a
DDP wrapper would need its hooks switched on and off. Only rank 0 writes (checkpoint, logs).

A single process (no torchrun) gets `Ranks(0, 1)`, and every method is then free: no copies, no
collectives.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from posgen.errors import ConfigError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: `rank` of `world_size` (1: a single process)."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes checkpoints, logs and progress."""
        return self.rank == 0

    def local_batch(self, global_batch: int) -> int:
        if global_batch % self.world_size:
            raise ConfigError(f"train.batch_size {global_batch} does not split over {self.world_size} processes; "
                              f"use a multiple of {self.world_size}")
        return global_batch // self.world_size

    def shard(self, x: torch.Tensor, interleave: int = 1) -> torch.Tensor:
        """This rank's rows of a global-batch tensor x [N, ...].

        `interleave` = g lays the batch out as [g, world, N / (g world)] and keeps [:, rank]: the
        rows the single-process minibatch-std groups (`x.reshape(g, -1, ...)`) would gather
        stay together on one rank, in the same group positions. 1: contiguous blocks.
        """
        if self.world_size == 1:
            return x
        n = x.shape[0]
        g = self._groups(n, interleave)
        return x.reshape(g, self.world_size, n // (g * self.world_size), *x.shape[1:])[:, self.rank].reshape(
            n // self.world_size, *x.shape[1:])

    def _groups(self, n: int, interleave: int) -> int:
        """How many interleaved groups `shard` lays a global batch of n out in (1 where n does not split)."""
        return interleave if interleave > 0 and n % (interleave * self.world_size) == 0 else 1

    def gather(self, x: torch.Tensor, interleave: int = 1) -> torch.Tensor:
        """The global-batch tensor [N, ...] of which each rank holds `shard(., interleave)` as x (the inverse
        of `shard`, on every rank)."""
        if self.world_size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.contiguous())
        n = x.shape[0] * self.world_size
        g = self._groups(n, interleave)
        return torch.stack([p.reshape(g, -1, *x.shape[1:]) for p in parts], 1).reshape(n, *x.shape[1:])

    def reduce(self, params, loss: torch.Tensor) -> torch.Tensor:
        """Average the gradients of `params` and the value of `loss` over the ranks, in one all-reduce;
        returns the mean loss (non-finite on every rank when it is on one)."""
        if self.world_size == 1:
            return loss
        mean = loss.detach().reshape(1).float().clone()
        _all_mean([p.grad for p in params if p.grad is not None] + [mean], self.world_size)
        return mean[0]

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over the ranks of a tensor (a copy; the tensor itself when alone)."""
        if self.world_size == 1:
            return x
        y = x.detach().clone()
        _all_mean([y], self.world_size)
        return y

    @torch.no_grad()
    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average `module`'s floating-point buffers over the ranks: running statistics that each rank
        updated from its shard (StyleGAN's w_avg, StyleGAN3's magnitude EMA). For a linear update
        (lerp towards the shard's mean) this equals the update from the whole batch."""
        if self.world_size > 1:
            _all_mean([b for b in module.buffers() if b.is_floating_point()], self.world_size)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def mean_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Scalar statistics averaged over the ranks (the same keys on every rank), for rank 0's logs."""
        if self.world_size == 1 or not stats:
            return stats
        values = self.mean(torch.tensor(list(stats.values()), dtype=torch.float64))
        return dict(zip(stats, values.tolist()))

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is on one (a time limit, say, that all must honour together)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t)
        return bool(t.item() > 0)


@torch.no_grad()
def _all_mean(tensors: list[torch.Tensor], world_size: int) -> None:
    """Replace each tensor by its mean over the ranks, in one all-reduce of one flat buffer per dtype."""
    for dtype in dict.fromkeys(t.dtype for t in tensors):  # in order: the same collectives on every rank
        group = [t for t in tensors if t.dtype == dtype]
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def ranks() -> Ranks:
    """The current process group's ranks (Ranks(0, 1) without one)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: str) -> tuple[Ranks, str]:
    """Join the process group torchrun described in the environment (gloo on CPU, NCCL on CUDA;
    each rank on GPU LOCAL_RANK); -> (ranks, this rank's device). Without torchrun: (Ranks(), device)."""
    if not launched() or dist.is_initialized():
        return ranks(), device
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    # First, what every trainer imports anyway (Adam imports torch._dynamo): some of its modules bind
    # the default group as a default argument when imported (torch.distributed.nn.functional's
    # `group=group.WORLD`). Imported after init_process_group they would keep the group alive past
    # destroy_process_group, its gloo threads would run into the interpreter's exit, and a rank
    # could abort there ("terminate called without an active exception") after a complete run.
    importlib.import_module("torch._dynamo")
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timedelta(minutes=30))
    return ranks(), device


def stop(clean: bool = True) -> None:
    """Leave the process group; `clean`: after a barrier, so that no rank exits while another still
    talks to it (not after an error, which the other ranks may not share)."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def main_process() -> bool:
    """Whether this process is rank 0 of its torchrun job (or alone): the one that prints."""
    return int(os.environ.get("RANK", "0")) == 0
