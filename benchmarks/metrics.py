"""Throughput of every metric and the projected time for 50k samples.

    python benchmarks/metrics.py                          # digits-mspe on CPU
    python benchmarks/metrics.py --preset ffhq256-mspe --device cuda --num 2048

Each stage is timed on its own for `--num` samples from an untrained generator of the preset
(speed does not depend on the weights; the Inception network is timed with random weights
when its weights file is absent):
  render      generating the images (shared by all distribution metrics)
  features    digits / inception feature pass (img/s)
  fid/kid/pr  statistics from features (projected with their complexity: fid O(N), kid
              fixed subsets, pr O(N²))
  swd         descriptor extraction + sliced Wasserstein
  spectrum    power spectra
  eqt/eqr     two renders + resampling per sample
Prints one line per metric with samples/s (end to end, render included) and the projected
time for 50,000 samples.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from posgen.metrics.digits_features import DigitsFeatureNet
from posgen.metrics.equivariance import equivariance
from posgen.metrics.fid import fid
from posgen.metrics.inception import FIDInceptionV3
from posgen.metrics.kid import kid
from posgen.metrics.precision_recall import precision_recall
from posgen.metrics.spectrum import power_spectra, spectrum
from posgen.metrics.swd import swd, swd_descriptors
from posgen.families import build_generator
from posgen.presets import get_preset
from posgen.sampling import make_sample_fn

TARGET = 50_000


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def batches(images: torch.Tensor, batch: int):
    return [images[i:i + batch] for i in range(0, len(images), batch)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="digits-mspe")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num", type=int, default=1024, help="samples per stage (default 1024)")
    p.add_argument("--eq-num", type=int, default=64, help="samples for the equivariance metrics")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--skip-inception", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev, n = args.device, args.num
    cfg = get_preset(args.preset)
    G = build_generator(cfg).to(dev).eval()
    sample_fn = make_sample_fn(G, noise_mode="const")
    grid = G.default_grid()
    torch.manual_seed(0)

    images: list[torch.Tensor] = []
    t_render = timed(lambda: images.extend(sample_fn(min(args.batch, n - i), i, grid) for i in range(0, n, args.batch)), dev)
    images_t = torch.cat(images)
    rows = [("render", n / t_render, t_render / n * TARGET)]
    per_img_render = t_render / n

    extractors = {"digits": DigitsFeatureNet().to(dev).eval()}
    if not args.skip_inception:
        extractors["inception"] = FIDInceptionV3().to(dev).eval()
    feats = {}
    for name, net in extractors.items():
        out = []

        def run(net=net, out=out):
            with torch.no_grad():
                out.extend(net(b.to(dev)).cpu() for b in batches(images_t, args.batch))
        t = timed(run, dev)
        feats[name] = torch.cat(out).numpy()
        rows.append((f"features:{name}", n / t, (per_img_render + t / n) * TARGET))

    f = feats["digits"]
    half = n // 2
    t_fid = timed(lambda: fid(f[:half], f[half:]), "cpu")
    t_kid = timed(lambda: kid(f[:half], f[half:]), "cpu")  # 100 subsets of min(1000, N): fixed cost
    t_pr = timed(lambda: precision_recall(f[:half], f[half:]), "cpu")
    t_feat = n / rows[1][1]
    for name, t_stat, projected_stat in (("fid", t_fid, t_fid * TARGET / half),
                                         ("kid", t_kid, t_kid * (1000 / min(1000, half)) ** 2),
                                         ("pr", t_pr, t_pr * (TARGET / half) ** 2)):
        rows.append((f"{name} (digits features)", n / (t_render + t_feat + t_stat),
                     (per_img_render + t_feat / n) * TARGET + projected_stat))

    desc = []
    t_desc = timed(lambda: desc.extend(swd_descriptors(b.cpu(), seed=i) for i, b in enumerate(batches(images_t, args.batch))), "cpu")
    levels = [np.concatenate(lv) for lv in zip(*desc)]
    halves = [lv[:len(lv) // 2] for lv in levels], [lv[len(lv) // 2:] for lv in levels]
    t_swd = timed(lambda: swd(*halves), "cpu")
    rows.append(("swd", n / (t_render + t_desc + t_swd), (per_img_render + t_desc / n + t_swd / n * 2) * TARGET))

    spectra = []
    t_spec = timed(lambda: spectra.extend(power_spectra(b.cpu()) for b in batches(images_t, args.batch)), "cpu")
    s = np.concatenate(spectra)
    t_cmp = timed(lambda: spectrum(s[:half], s[half:]), "cpu")
    rows.append(("spectrum", n / (t_render + t_spec + t_cmp), (per_img_render + t_spec / n) * TARGET))

    for kind in ("eqt", "eqt-frac", "eqr"):
        t = timed(lambda kind=kind: equivariance(sample_fn, kind, grid=grid, num_samples=args.eq_num,
                                                 batch_size=min(8, args.batch)), dev)
        rows.append((kind, args.eq_num / t, t / args.eq_num * TARGET))

    res = cfg.model.resolution
    print(f"# {args.preset} ({res}x{res}) on {dev}, {torch.get_num_threads()} threads, {n} samples per stage")
    print(f"{'metric':<28}{'samples/s':>12}{'50k samples':>14}")
    for name, rate, projected in rows:
        print(f"{name:<28}{rate:>12.1f}{projected / 60:>11.1f} min")


if __name__ == "__main__":
    main()
