"""Train the digits feature network (the FID / KID / P&R feature space for colour digits) and
write its weights with the training facts as safetensors metadata.

    .venv/bin/python scripts/train_digits_extractor.py            # -> src/posgen/assets/digits-features.safetensors
    .venv/bin/python scripts/train_digits_extractor.py --epochs 2 --out /tmp/quick.safetensors
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from posgen.metrics import digits_features as df

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "posgen" / "assets" / "digits-features.safetensors"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="weights file (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--renders-per-epoch", type=int, default=16, help="fresh renders of each training glyph per epoch")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16)")
    args = ap.parse_args(argv)

    t0 = time.time()
    net, facts = df.train_digits_extractor(seed=args.seed, epochs=args.epochs, renders_per_epoch=args.renders_per_epoch,
                                        threads=args.threads)
    print(f"trained in {facts['train_seconds']:.0f} s ({facts['train_glyphs']} training glyphs, "
          f"{len(facts['heldout_glyphs'])} held out)")
    names = ("heldout", "biased32", "biased64")
    print("float32:  " + "  ".join(f"{k} {facts[f'{k}_accuracy']:.4f}" for k in names))
    if not args.fp32:
        heldout = np.asarray(facts["heldout_glyphs"])
        x_eval, y_eval = df.heldout_render_set(net, args.seed, heldout, facts["eval_renders"])
        half = df.evaluate(df.half_rounded(net), args.seed, heldout, x_eval, y_eval)
        print("float16:  " + "  ".join(f"{k} {half[f'{k}_accuracy']:.4f}" for k in names))
        facts.update({f"fp32_{k}_accuracy": facts[f"{k}_accuracy"] for k in names})
        facts.update(half)  # the figures of the weights actually stored
    facts["dtype"] = "float32" if args.fp32 else "float16"
    df.save_weights(net, args.out, facts, half=not args.fp32)
    df.load_digits_extractor(weights=args.out)  # round trip: metadata and tensors check out
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f} s total")
    print(f"held-out accuracy: glyph renders {facts['heldout_accuracy']:.4f} ({facts['eval_images']} images), "
          f"biased digits 32x32 {facts['biased32_accuracy']:.4f} ({facts['biased32_images']}), "
          f"64x64 {facts['biased64_accuracy']:.4f} ({facts['biased64_images']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
