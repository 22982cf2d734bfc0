"""How honest `Generator.memory_estimate` is: the measured peak of a render against the estimate,
for every family, on a few canvas sizes and batches.

    python benchmarks/memory.py                 # every case below, 1 thread
    python benchmarks/memory.py --family cips   # one family

Each case runs in a fresh process: it loads (or builds) the generator, renders once on a small grid
(lazy initialisation is not the render's), then reads its resident set size (baseline), renders the
case and reads its own peak (VmHWM, `posgen.memory.peak_resident_bytes`). "measured" is peak - baseline: what the render added. A ratio
measured / estimate at or below 1 means the budget check (`posgen.memory`) never lets through a
render that needs more than it was told; the README's benchmark section quotes the ranges.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

# family -> (shipped model name or preset, render options, [(height, width, batch), ...])
CASES = {
    "stylegan2": ("digits-mspe-nopad", {}, [(256, 256, 1), (512, 512, 1), (512, 512, 4), (1024, 1024, 1)]),
    "stylegan2-zero": ("digits-mspe", {}, [(512, 512, 1), (1024, 1024, 1)]),
    "cips": ("digits-cips", {"chunk_points": 65536}, [(256, 256, 1), (512, 512, 1), (1024, 1024, 1), (512, 512, 4)]),
    "stylegan3": ("preset:digits-sg3t", {}, [(128, 128, 1), (256, 256, 1), (256, 256, 4)]),
    "singan": ("singan-nopad", {}, [(344, 512, 1), (688, 1024, 1), (344, 512, 4)]),
    "ddpm": ("digits-ddpm", {"steps": 2}, [(128, 128, 1), (256, 256, 1), (256, 256, 4)]),
    "dcgan": ("preset:digits-dcgan-nopad-spe", {}, [(32, 32, 64), (32, 32, 256)]),
}

CASE = """
import json, sys, torch
from posgen.families import build_generator
from posgen.grid import Grid
from posgen.memory import peak_resident_bytes, reset_peak_resident, resident_bytes
from posgen.models.base import RenderOptions
from posgen.presets import get_preset
from posgen.sampling import load
torch.set_grad_enabled(False)
torch.set_num_threads(1)
model, options, h, w, n = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:6])
G = build_generator(get_preset(model[7:])).eval() if model.startswith("preset:") else load(model).G
opts = RenderOptions(**options)
grid = G.default_grid() if G.family == "dcgan" else Grid(h, w)
G.render(G.latents([0], G.default_grid()), G.default_grid(), opts)
z = G.latents(list(range(n)), grid)
base = resident_bytes()
reset_peak_resident()
G.render(z, grid, opts)
peak = peak_resident_bytes() - base
print(json.dumps({"measured": peak, "estimate": G.memory_estimate(n, grid, opts)}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=list(CASES))
    args = p.parse_args()
    print(f"{'family':<15} {'model':<30} {'canvas':>10} {'batch':>5} {'measured':>10} {'estimate':>10} {'ratio':>6}")
    for family, (model, options, sizes) in CASES.items():
        if args.family and family != args.family:
            continue
        for h, w, n in sizes:
            out = subprocess.run([sys.executable, "-c", CASE, model, json.dumps(options), str(h), str(w), str(n)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{family:<15} {model:<30} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout)
            print(f"{family:<15} {model:<30} {f'{h}x{w}':>10} {n:>5} {r['measured'] / 2**20:>9.0f}M "
                  f"{r['estimate'] / 2**20:>9.0f}M {r['measured'] / r['estimate']:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
