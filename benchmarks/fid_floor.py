"""What a digits FID figure means: FID of *real* biased digits with one defect each.

The second half of the real images (data order, so the copies of one glyph stay together), altered
one way at a time, is scored against the first half with posgen's digits features, the way
`posgen evaluate` scores a generator. It tells how much FID a defect seen in generated samples
costs on its own: a skewed class mix (a model's coverage), missing classes, two hues inside one
glyph, blur, digits placed off their jitter range.

    python benchmarks/fid_floor.py                       # about 20 s on one CPU thread
    python benchmarks/fid_floor.py --fractions 0.137,0.05,0.059,0.26,0.01,0.091,0.081,0.039,0.131,0.142
"""
from __future__ import annotations

import argparse
import colorsys

import numpy as np
import torch

from posgen.data.digits import BiasedDigitsConfig, make_biased_digits
from posgen.metrics.digits_features import gaussian_blur, load_digits_extractor
from posgen.metrics.fid import fid

# class fractions of the shipped digits-baseline (10k samples, `posgen evaluate --metrics coverage`)
BASELINE_FRACTIONS = "0.137,0.05,0.059,0.26,0.01,0.091,0.081,0.039,0.131,0.142"


def features(net, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([net(images[i:i + 256].float() / 127.5 - 1) for i in range(0, len(images), 256)]).numpy()


def resample_classes(images, labels, fractions, rng) -> torch.Tensor:
    """As many images as given, drawn with replacement so that the classes follow `fractions`."""
    n = len(images)
    counts = rng.multinomial(n, np.asarray(fractions) / np.sum(fractions))
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), k) for c, k in enumerate(counts) if k])
    return images[idx]


def two_hues(images, rng) -> torch.Tensor:
    """Each glyph's right half recoloured with another random hue (the generators' colour defect)."""
    out = images.clone().float()
    ink = out.amax(1, keepdim=True)  # [N, 1, H, W]: the glyph's value
    cols = ink[:, 0].amax(1)  # [N, W]: columns with ink
    for i in range(len(out)):
        xs = torch.nonzero(cols[i] > 0).flatten()
        if len(xs) == 0:
            continue
        mid = int((xs.min() + xs.max() + 1) // 2)
        rgb = torch.tensor(colorsys.hsv_to_rgb(rng.uniform(), 1.0, 1.0), dtype=torch.float32)[:, None, None]
        out[i, :, :, mid:] = ink[i, :, :, mid:] * rgb
    return out.round().clamp(0, 255).to(torch.uint8)


def blur(images, sigma: float) -> torch.Tensor:
    return gaussian_blur(images.float(), sigma).round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fractions", default=BASELINE_FRACTIONS, help="a model's class fractions, 10 numbers")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fractions = [float(f) for f in args.fractions.split(",")]
    if len(fractions) != 10 or min(fractions) < 0 or sum(fractions) <= 0:
        raise SystemExit("--fractions needs 10 non-negative numbers")
    rng = np.random.default_rng(12345)  # not the data's seed 0: its hues would come out again
    images, labels = make_biased_digits(BiasedDigitsConfig(colors=None, copies=4, jitter=2))
    labels = labels.numpy()
    half = len(images) // 2
    net = load_digits_extractor()
    reference = features(net, images[:half])
    test, test_labels = images[half:], labels[half:]
    seven = np.bincount(test_labels, minlength=10).astype(float)
    seven[np.argsort(fractions)[:3]] = 0  # the model's three rarest classes gone
    cases = {
        "none (the real-vs-real floor)": test,
        "class mix of the given model": resample_classes(test, test_labels, fractions, rng),
        "7 classes, the given model's 3 rarest missing": resample_classes(test, test_labels, seven, rng),
        "two hues inside each glyph": two_hues(test, rng),
        "blur sigma 0.5 px": blur(test, 0.5),
        "blur sigma 1 px": blur(test, 1.0),
        "shifted 3 px right and down": torch.roll(test, (3, 3), dims=(2, 3)),
    }
    print(f"{'real digits (second half), altered':<50} FID vs first half ({half} images, digits features)")
    for name, imgs in cases.items():
        print(f"{name:<50} {fid(features(net, imgs), reference)['fid']:8.1f}")


if __name__ == "__main__":
    main()
