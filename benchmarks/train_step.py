"""Training-step throughput and peak memory for the presets.

    python benchmarks/train_step.py                      # digits presets on CPU
    python benchmarks/train_step.py --presets ffhq256-mspe --device cuda --batch 32

Prints one line per preset: seconds per step, images/s, peak memory (CUDA: max allocated;
CPU: the process's peak resident set), and the ratio to the first preset.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import torch

from posgen.config import apply_overrides
from posgen.presets import PRESETS, get_preset
from posgen.training.loop import build_trainer

DIGITS = [n for n in PRESETS if n.startswith("digits-")]


def bench(name: str, device: str, steps: int, warmup: int, batch: int | None, threads: int | None) -> dict:
    overrides = [f"train.batch_size={batch}"] if batch else []
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
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dt = (time.perf_counter() - t0) / steps
    return {"preset": name, "batch": cfg.train.batch_size, "s_per_step": dt,
            "images_per_s": cfg.train.batch_size / dt, "peak_mib": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=DIGITS)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, help="override the preset's batch size")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    a = p.parse_args()
    print(f"device={a.device} threads={torch.get_num_threads() if not a.threads else a.threads} "
          f"torch={torch.__version__}")
    first = None
    for name in a.presets:
        # a fresh process per preset, so the CPU peak RSS is that preset's own
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            r = pool.apply(bench, (name, a.device, a.steps, a.warmup, a.batch, a.threads))
        first = first or r["images_per_s"]
        print(f"{name:22s} batch {r['batch']:3d}  {r['s_per_step']:.3f} s/step  {r['images_per_s']:8.1f} img/s  "
              f"peak {r['peak_mib']:8.0f} MiB  x{r['images_per_s'] / first:.2f}", flush=True)


if __name__ == "__main__":
    main()
