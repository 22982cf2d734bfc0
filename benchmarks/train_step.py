"""Training-step throughput and peak memory for the presets.

    python benchmarks/train_step.py                      # digits presets on CPU
    python benchmarks/train_step.py --presets ffhq256-mspe --device cuda --batch 32
    python benchmarks/train_step.py --presets digits-baseline digits-mspe --augment   # ADA's cost per step
    python benchmarks/train_step.py --against /tmp/pg-before --rounds 3   # this tree vs another checkout
    python benchmarks/train_step.py --presets ffhq256-mspe --device cuda --set train.precision=bf16 \
        --set train.channels_last=true --set train.compile=true

Prints one line per preset: seconds per step, images/s, peak memory (CUDA: max allocated;
CPU: the process's peak resident set), and the ratio to the first preset. With --augment each
preset also runs with adaptive discriminator augmentation at its busiest (p fixed at 0.8, every
transform on), alternating plain and augmented steps in one process so that both see the same
machine, and the line gives the augmented step's cost relative to the plain one. With --against TREE
each preset runs alternately in a fresh process on TREE's posgen (TREE/src, e.g. a `git worktree` of
the previous commit) and on this one, --rounds times each, and the line gives both medians and the ratio of
the fastest runs (the least disturbed on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from posgen.config import apply_overrides
from posgen.memory import peak_resident_bytes
from posgen.presets import PRESETS, get_preset
from posgen.training.loop import build_trainer

DIGITS = [n for n in PRESETS if n.startswith("digits-")]


ADA_BUSIEST = ["train.augment.enabled=true", "train.augment.fixed_p=0.8"]


def bench(name: str, device: str, steps: int, warmup: int, batch: int | None, threads: int | None,
          extra: tuple[str, ...] = ()) -> dict:
    overrides = ([f"train.batch_size={batch}"] if batch else []) + list(extra)
    cfg = apply_overrides(get_preset(name), overrides)
    if threads:
        torch.set_num_threads(threads)
    if not name.startswith("digits-"):
        cfg.data.source = "digits"  # synthetic stand-in: same shapes, no dataset needed
        cfg.data.digits.canvas = (cfg.model.resolution,) * 2
        cfg.data.digits.region = (0, 0, cfg.model.resolution // 2, cfg.model.resolution // 2)
    trainer = build_trainer(cfg, seed=0, device=device)
    for _ in range(warmup):
        trainer.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_resident_bytes() / 2**20
    dt = (time.perf_counter() - t0) / steps
    return {"preset": name, "batch": cfg.train.batch_size, "s_per_step": dt,
            "images_per_s": cfg.train.batch_size / dt, "peak_mib": peak}


def bench_augment(name: str, device: str, steps: int, warmup: int, batch: int | None, threads: int | None) -> dict:
    """Plain and ADA-augmented steps of one preset, interleaved (plain, augmented, plain, ...)."""
    if threads:
        torch.set_num_threads(threads)
    base = [f"train.batch_size={batch}"] if batch else []
    trainers = [build_trainer(apply_overrides(get_preset(name), base + extra), seed=0, device=device)
                for extra in ([], ADA_BUSIEST)]
    seconds = [0.0, 0.0]
    for k in range(warmup + steps):
        for i, trainer in enumerate(trainers):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.train_step()
            if device == "cuda":
                torch.cuda.synchronize()
            if k >= warmup:
                seconds[i] += time.perf_counter() - t0
    n = trainers[0].cfg.train.batch_size
    return {"preset": name, "batch": n, "plain_s": seconds[0] / steps, "augmented_s": seconds[1] / steps}


def against(tree: str, a: argparse.Namespace) -> None:
    """Each preset alternately on `tree`'s posgen and on this one, one fresh process per run."""
    trees = {"before": str(Path(tree) / "src"), "after": str(Path(__file__).resolve().parents[1] / "src")}
    for name in a.presets:
        seconds: dict[str, list[float]] = {k: [] for k in trees}
        for _ in range(a.rounds):
            for label, src in trees.items():
                cmd = [sys.executable, __file__, "--json", "--presets", name, "--device", a.device,
                       "--steps", str(a.steps), "--warmup", str(a.warmup)]
                cmd += [x for o in a.set or [] for x in ("--set", o)] + (["--batch", str(a.batch)] if a.batch else [])
                out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": src}, check=True, capture_output=True,
                                     text=True).stdout
                seconds[label].append(json.loads(out.splitlines()[-1])["s_per_step"])
        before, after = (statistics.median(seconds[k]) for k in trees)
        fastest = min(seconds["after"]) / min(seconds["before"])  # the least disturbed run of each, on a shared machine
        print(f"{name:22s} before {before:.3f} s/step  after {after:.3f} s/step  after/before x{after / before:.3f} "
              f"(medians of {a.rounds}), x{fastest:.3f} (fastest runs); runs "
              f"{' '.join(f'{x:.3f}' for x in seconds['before'])} | {' '.join(f'{x:.3f}' for x in seconds['after'])}",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=DIGITS)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, help="override the preset's batch size")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--augment", action="store_true", help="also time each preset with ADA at p = 0.8, interleaved")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every preset")
    p.add_argument("--against", metavar="TREE", help="also time the posgen of another checkout, alternating")
    p.add_argument("--rounds", type=int, default=3, help="runs per tree with --against (median reported)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one preset in this process, one JSON line
    a = p.parse_args()
    extra = tuple(a.set or ())
    if a.json:
        print(json.dumps(bench(a.presets[0], a.device, a.steps, a.warmup, a.batch, a.threads, extra)))
        return
    print(f"device={a.device} threads={torch.get_num_threads() if not a.threads else a.threads} "
          f"torch={torch.__version__}")
    if a.against:
        against(a.against, a)
        return
    if a.augment:
        for name in a.presets:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                r = pool.apply(bench_augment, (name, a.device, a.steps, a.warmup, a.batch, a.threads))
            print(f"{name:22s} batch {r['batch']:3d}  plain {r['plain_s']:.3f} s/step  ADA p=0.8 "
                  f"{r['augmented_s']:.3f} s/step  x{r['augmented_s'] / r['plain_s']:.3f} per step", flush=True)
        return
    first = None
    for name in a.presets:
        # a fresh process per preset, so the CPU peak RSS is that preset's own
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            r = pool.apply(bench, (name, a.device, a.steps, a.warmup, a.batch, a.threads, extra))
        first = first or r["images_per_s"]
        print(f"{name:22s} batch {r['batch']:3d}  {r['s_per_step']:.3f} s/step  {r['images_per_s']:8.1f} img/s  "
              f"peak {r['peak_mib']:8.0f} MiB  x{r['images_per_s'] / first:.2f}", flush=True)


if __name__ == "__main__":
    main()
