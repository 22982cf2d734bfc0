"""StyleGAN3-T / -R training-step cost against the StyleGAN2 baseline at the same size and channels.

    OMP_NUM_THREADS=1 python benchmarks/sg3.py                 # CPU, one thread, digits sizes (32x32)
    OMP_NUM_THREADS=1 python benchmarks/sg3.py --rows 1,2      # SG2 + the two presets only
    python benchmarks/sg3.py --device cuda --threads 0

One G+D training step (the shared GAN trainer, lazy R1 included) per row: seconds per step, images/s
and the cost relative to the StyleGAN2 baseline (digits-baseline: 32x32, channel_max 64, batch 16).
Rows: the digits-sg3t / digits-sg3r presets (8 layers, margin 8) and the same networks at the
paper's depth (14 layers, margin 10). On CUDA every StyleGAN3 row runs twice: the pure path
(POSGEN_PURE=1) and the fast path (bias + leaky ReLU + clamp fused by torch.compile into one Triton
kernel; posgen/ops/filters.py); on CPU only the pure path exists.
For scale: NVlabs' reference (non-CUDA) path costs 41x (T) and 96x (R) their StyleGAN2 at 32x32,
channel_max 64, batch 16 on 2 threads (DESIGN.md).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os

import torch
from train_step import bench  # benchmarks/train_step.py: one preset's seconds per G+D step

PAPER_DEPTH = ["model.num_layers=14", "model.margin=10"]
ROWS = [  # label, preset, overrides
    # the SG3 presets are unconditional: the baseline row drops the class-conditional recipe of the
    # StyleGAN2 digits presets (docs/recipe.md) so that both sides run the same mapping and D
    ("SG2 baseline", "digits-baseline", ["model.num_classes=0", "discriminator.num_classes=0", "train.class_weight=0"]),
    ("SG3-T (digits-sg3t)", "digits-sg3t", []),
    ("SG3-R (digits-sg3r)", "digits-sg3r", []),
    ("SG3-T 14 layers, margin 10", "digits-sg3t", PAPER_DEPTH),
    ("SG3-R 14 layers, margin 10", "digits-sg3r", PAPER_DEPTH),
    ("SG3-R 2x channels (paper)", "digits-sg3r", ["model.channel_base=2048", "model.channel_max=128"]),
]


def _choose_path(path: str) -> None:
    """In a fresh row process, before torch runs anything: the pure or the fast StyleGAN3 path."""
    os.environ["POSGEN_PURE"] = "1" if path == "pure" else "0"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--rows", default=",".join(map(str, range(len(ROWS)))),
                   help="comma-separated row indices (0, the SG2 baseline, always runs first)")
    a = p.parse_args()
    print(f"device={a.device} threads={a.threads or torch.get_num_threads()} torch={torch.__version__}")
    base = None
    rows = sorted({0, *map(int, a.rows.split(","))})
    paths = ("pure", "fast") if a.device.startswith("cuda") else ("pure",)
    for label, preset, overrides in (ROWS[i] for i in rows):
        for path in paths if preset.startswith("digits-sg3") else ("pure",):
            # a fresh process per row, its path chosen before torch runs anything
            with multiprocessing.get_context("spawn").Pool(1, initializer=_choose_path, initargs=(path,)) as pool:
                r = pool.apply(bench, (preset, a.device, a.steps, a.warmup, None, a.threads, tuple(overrides)))
            dt, batch = r["s_per_step"], r["batch"]
            base = base or dt
            name = f"{label} [{path}]" if len(paths) > 1 and preset.startswith("digits-sg3") else label
            print(f"{name:36s} batch {batch:3d}  {dt:7.3f} s/step  {batch / dt:7.1f} img/s  x{dt / base:5.2f} SG2 cost",
                  flush=True)


if __name__ == "__main__":
    main()
