"""The generic training driver: one loop for every family.

`train(cfg, out)` owns what every run needs: resume, `config.json`, TensorBoard logs and an
always-written `stats.jsonl`, the progress bar, snapshots (checkpoint + sample sheet), the
`--minutes` limit, a checkpoint when the data fails, and a clean stop on a non-finite loss.
Checkpoints come at step 0 of a fresh run, `train.first_snapshot_seconds` after each (re)start
(unless a snapshot came first), then every `train.snapshot_kimg`: a run killed at any moment
resumes, and loses at most one snapshot interval or that first delay. With `train.fid_samples`
every snapshot is scored by FID and the best one kept (`posgen.training.best`).
A family brings only its trainer (`Trainer` below), named in `posgen.families.FAMILIES`.
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Protocol

import torch

from posgen import checkpoint
from posgen.training import distributed
from posgen.config import RunConfig, apply_overrides
from posgen.errors import CheckpointError, DataError, TrainingError, UsageError
from posgen.files import atomic_write, remove_stale_temps
from posgen.training.best import FID_LOG_NAME, BestSnapshot

STATS_NAME = "stats.jsonl"


class Trainer(Protocol):
    """What a family's trainer provides. Built as `trainer(cfg, family, seed=, device=)`.

    `step` counts completed iterations and `seconds` the training time (the driver adds to it).
    `train_step()` runs one iteration, increments `step` and returns scalar statistics; it raises
    `TrainingError` on a non-finite loss and `DataError` on bad data before any update.
    `state_tensors()` holds everything an exact resume needs (generator weights under "G_ema."
    or "G."); `restore(tensors, state)` puts it back; `sample_grid(path)` writes fixed-seed samples.
    """

    step: int
    seconds: float

    def train_step(self) -> dict[str, float]: ...
    def state_tensors(self) -> dict[str, torch.Tensor]: ...
    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None: ...
    def sample_grid(self, path: Path) -> None: ...


def check_finite(loss: torch.Tensor, name: str, step: int) -> None:
    """The trainers' stop on a non-finite loss: a TrainingError naming the loss and the step."""
    if not torch.isfinite(loss):
        raise TrainingError(f"{name} loss is {loss.item()} at step {step}; stopping (the last checkpoint is kept)")


def build_trainer(cfg: RunConfig, seed: int = 0, device: str = "cpu") -> Trainer:
    """The trainer of `cfg`'s family, through the family table (fresh networks, no run directory)."""
    from posgen.families import family

    f = family(cfg.family)
    return f.trainer(cfg, f, seed=seed, device=device)


def _state(trainer: Trainer, cfg: RunConfig, seed: int, world_size: int) -> dict:
    t = cfg.train
    return {"step": trainer.step, "kimg": trainer.step * t.batch_size / 1000, "seconds": trainer.seconds,
            "seed": seed, "total_steps": t.total_steps, "world_size": world_size,
            "batch_per_rank": t.batch_size // world_size}


def check_resumable(out: str | Path) -> None:
    """`--resume` on a run directory without a checkpoint: a run killed before it wrote its first one
    (during start-up) has nothing to lose, but its seed is not in config.json, so it is not restarted
    silently: a one-line refusal tells to start it again."""
    out = Path(out)
    if out.is_file():
        raise UsageError(f"--resume takes a run directory (the folder of checkpoint.safetensors); {out} is a file")
    if out.is_dir() and not (out / checkpoint.CHECKPOINT_NAME).exists():
        settings = f" (its settings are in {out / 'config.json'})" if (out / "config.json").is_file() else ""
        raise CheckpointError(f"{out} has no checkpoint yet: it stopped before writing its first one, so there is "
                              f"nothing to resume; start it again with the same options and --out {out}{settings}")


def _stats_lines(path: Path, up_to_step: int) -> list[str]:
    """The lines of an existing stats.jsonl logged at or before `up_to_step` (a resumed run
    continues from its checkpoint: lines logged after it would be logged again)."""
    if not path.exists():
        return []
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= up_to_step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill
    return keep


def train(cfg: RunConfig | None, out_dir: str | Path, *, seed: int = 0, device: str = "cpu", resume: bool = False,
          progress: bool = True, max_seconds: float | None = None, kimg: float | None = None) -> Path:
    """Train `cfg` into `out_dir` (checkpoint, config.json, stats.jsonl, sample PNGs, TensorBoard logs).

    With resume=True the run continues exactly from out_dir's checkpoint with its stored config
    (`cfg` is ignored); `kimg` then sets a new length (the length only decides where a run stops, so
    an extended run equals one trained that long from the start). `max_seconds` stops early (after a
    checkpoint) once that much time has passed. Under torchrun (`posgen.training.distributed`) every
    rank trains its share of each batch and only rank 0 writes (checkpoint, logs, progress).
    """
    out = Path(out_dir)
    ckpt_path = out / checkpoint.CHECKPOINT_NAME
    ranks, device = distributed.start(device)  # every rank checks the run directory before rank 0 writes to it
    try:
        _train(cfg, out, ckpt_path, ranks, seed=seed, device=device, resume=resume, progress=progress,
               max_seconds=max_seconds, kimg=kimg)
    except BaseException:
        distributed.stop(clean=False)
        raise
    distributed.stop()
    return out


def _train(cfg: RunConfig | None, out: Path, ckpt_path: Path, ranks: distributed.Ranks, *, seed: int, device: str,
           resume: bool, progress: bool, max_seconds: float | None, kimg: float | None) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    if resume:
        check_resumable(out)
        tensors, cfg, state = checkpoint.load(ckpt_path)
        if not isinstance(state.get("seed"), int) or not isinstance(state.get("step"), int):
            raise CheckpointError(f"{ckpt_path} has no training state (step, seed) to resume from; "
                                  "is it an exported generator?")
        seed = int(state["seed"])
        if kimg is not None:
            cfg = apply_overrides(cfg, [f"train.kimg={kimg!r}"])
            if cfg.train.total_steps < state["step"]:
                raise UsageError(f"--kimg {kimg:g} is shorter than {out} has already trained "
                                 f"({state['step']} steps, {state.get('kimg', 0):g} kimg)")
        done = f"{state['step']} steps, {state.get('kimg', 0):g} kimg"
        if state["step"] >= cfg.train.total_steps:  # nothing to do, and nothing is written
            if ranks.main:
                print(f"{out} is complete ({done}); --kimg K extends it", file=sys.stderr)
            return
        if ranks.main:
            print(f"resuming {out} at step {state['step']} ({state.get('kimg', 0):g} kimg)", file=sys.stderr)
    elif ckpt_path.exists():
        raise UsageError(f"{out} already holds a run; use --resume {out} or another --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a run directory")
    ranks.barrier()
    cfg.validate()
    ranks.local_batch(cfg.train.batch_size)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    trainer = build_trainer(cfg, seed, device)
    if resume:
        trainer.restore(tensors, state)
    if not ranks.main:
        _follow(trainer, cfg, ranks, max_seconds)
        return
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # left by a process killed while writing
    atomic_write(out / "config.json", lambda tmp: Path(tmp).write_text(cfg.to_json()))
    stats_path = out / STATS_NAME
    kept = _stats_lines(stats_path, trainer.step)
    atomic_write(stats_path, lambda tmp: Path(tmp).write_text("".join(f"{line}\n" for line in kept)))

    t = cfg.train
    total, log_steps = t.total_steps, t.log_steps

    def save() -> None:
        checkpoint.save(ckpt_path, trainer.state_tensors(), cfg, _state(trainer, cfg, seed, ranks.world_size))

    if not resume:  # a run killed before its first snapshot can still be resumed
        save()
    best = BestSnapshot(cfg, out, _stats_lines(out / FID_LOG_NAME, trainer.step)) if t.fid_samples else None
    writer = SummaryWriter(str(out / "logs"))
    bar = tqdm(total=total, initial=trainer.step, disable=not progress, unit="step", dynamic_ncols=True)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)  # steps that reported each stat (lazy terms: R1, the nearest pull)
    started = time.time()
    snapshotted = False  # by this process: the first checkpoint comes by train.first_snapshot_seconds
    try:
        with open(stats_path, "a") as log:
            while trainer.step < total:
                t0 = time.perf_counter()
                try:
                    stats = trainer.train_step()
                except DataError:
                    # reals are read before any update: the state is that of the last whole step
                    if trainer.step > 0:
                        save()
                    raise
                dt = time.perf_counter() - t0
                trainer.seconds += dt
                stats["images_per_s"] = t.batch_size / dt
                step = trainer.step
                for k, v in stats.items():
                    writer.add_scalar(k, v, global_step=step * t.batch_size)
                    sums[k] += v
                    counts[k] += 1
                if step % log_steps == 0 or step == total:
                    line = {"step": step, "kimg": round(step * t.batch_size / 1000, 4),
                            "seconds": round(trainer.seconds, 3),
                            **{k: round(v / counts[k], 6) for k, v in sums.items()}}
                    log.write(json.dumps(line) + "\n")
                    log.flush()
                    sums.clear()
                    counts.clear()
                bar.update(1)
                bar.set_postfix({"kimg": f"{step * t.batch_size / 1000:.1f}",
                                 "img/s": f"{stats['images_per_s']:.0f}",
                                 **{k.split("/")[-1]: f"{v:.2f}" for k, v in stats.items() if k.startswith("loss/")}})
                timeout = max_seconds is not None and ranks.any(time.time() - started > max_seconds)
                if step % t.snapshot_steps == 0 or step == total or timeout:
                    save()
                    snapshotted = True
                    trainer.sample_grid(out / f"samples-{step:07d}.png")
                    if best is not None:
                        kimg_now = step * t.batch_size / 1000
                        fid = best.score(ckpt_path, step, kimg_now)
                        writer.add_scalar("fid", fid, global_step=step * t.batch_size)
                        bar.write(f"kimg {kimg_now:.1f}: FID {fid:.2f} (best {best.best:.2f})")
                    if timeout:
                        break
                elif not snapshotted and time.time() - started >= t.first_snapshot_seconds:
                    save()  # the checkpoint alone: no sample grid between the regular ones
                    snapshotted = True
    finally:
        bar.close()
        writer.close()


def _follow(trainer: Trainer, cfg: RunConfig, ranks: distributed.Ranks, max_seconds: float | None) -> None:
    """A rank other than 0: the same steps and the same stop, no files."""
    started = time.time()
    while trainer.step < cfg.train.total_steps:
        trainer.train_step()
        if max_seconds is not None and ranks.any(time.time() - started > max_seconds):
            break
