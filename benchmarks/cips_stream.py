"""Streamed CIPS rendering: peak memory bounded by the chunk, speed, and equality with one-shot renders.

    python benchmarks/cips_stream.py                                   # digits-cips, 4096x4096, 1 thread
    python benchmarks/cips_stream.py --checkpoint runs/my-cips --size 2048 --threads 2

Each case runs in a fresh process, which reports its resident set size after loading the model
(baseline) and at its peak (`ru_maxrss`). The render needs the output tensor (H * W * 3 float32)
plus the working set of one chunk; "working" below is peak - baseline - output.

    1. one-shot vs streamed on --equal-size (where a one-shot render fits): max |difference|
    2. --size x --size streamed in chunks of --chunk points (default 65536): peak memory, Mpix/s
    3. the working set for several chunk sizes on --scan-size: it follows the chunk, not the canvas
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from posgen.memory import peak_resident_bytes, reset_peak_resident, resident_bytes


def _case(checkpoint: str, size: int, chunk: int | None, threads: int, seed: int, queue) -> None:
    import torch

    from posgen.sampling import load, render_seeds

    torch.set_num_threads(threads)
    G = load(checkpoint).G
    grid = G.default_grid().zoom(size / G.resolution, size=(size, size))
    render_seeds(G, [seed], G.default_grid(), chunk_points=chunk)  # warm-up: allocator, kernels
    baseline = resident_bytes() / 2**20
    reset_peak_resident()
    t0 = time.perf_counter()
    img = render_seeds(G, [seed], grid, chunk_points=chunk)
    seconds = time.perf_counter() - t0
    peak = peak_resident_bytes() / 2**20
    queue.put({"image": img.numpy() if size <= 1024 else None, "seconds": seconds, "baseline_mib": baseline,
               "peak_mib": peak, "output_mib": img.numel() * 4 / 2**20})


def run_case(checkpoint: str, size: int, chunk: int | None, threads: int, seed: int = 0) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_case, args=(checkpoint, size, chunk, threads, seed, queue))
    p.start()
    result = queue.get()
    p.join()
    result["working_mib"] = result["peak_mib"] - result["baseline_mib"] - result["output_mib"]
    result["mpix_per_s"] = size * size / result["seconds"] / 1e6
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="digits-cips")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--equal-size", type=int, default=512)
    ap.add_argument("--scan-size", type=int, default=1024)
    ap.add_argument("--scan-chunks", default="4096,16384,65536,262144")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    one = run_case(args.checkpoint, args.equal_size, args.equal_size**2, args.threads)
    streamed = run_case(args.checkpoint, args.equal_size, 4096, args.threads)
    diff = float(abs(one["image"] - streamed["image"]).max())
    print(f"{args.checkpoint}, {args.threads} thread(s)")
    print(f"equal    {args.equal_size}x{args.equal_size}: one-shot vs chunks of 4096 points, max |diff| = {diff:.2e}; "
          f"working set {one['working_mib']:.0f} MiB one-shot vs {streamed['working_mib']:.0f} MiB streamed")

    big = run_case(args.checkpoint, args.size, args.chunk, args.threads)
    print(f"stream   {args.size}x{args.size} in chunks of {args.chunk}: {big['seconds']:.1f} s, "
          f"{big['mpix_per_s']:.2f} Mpix/s, peak RSS {big['peak_mib']:.0f} MiB = baseline {big['baseline_mib']:.0f} "
          f"+ output {big['output_mib']:.0f} + working {big['working_mib']:.0f}")

    for chunk in (int(c) for c in args.scan_chunks.split(",")):
        r = run_case(args.checkpoint, args.scan_size, chunk, args.threads)
        print(f"scan     {args.scan_size}x{args.scan_size}, chunk {chunk:>7}: working {r['working_mib']:7.1f} MiB "
              f"({r['working_mib'] * 2**20 / chunk:6.0f} B/point), {r['mpix_per_s']:.2f} Mpix/s")


if __name__ == "__main__":
    main()
