"""`posgen demo`: the point of posgen at a glance.

The StyleGAN2 baseline (learned constant, zero padding), MS-PE (Choi et al.) and padding-free
MS-PE (Xu et al.) draw the same seeds on the training canvas, shifted by whole and fractional
pixels and diagonally, zoomed 2x, and on a 3x wider canvas: one row per model with a caption
saying what to compare, and the shift consistency of each model (Choi App. C.4) printed.
Uses the models shipped in posgen/assets; a model that is not shipped is trained for a few
minutes first (resuming an interrupted demo run).
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from posgen import checkpoint
from posgen.grid import Canvas
from posgen.models import Generator
from posgen.pretrained import pretrained_path
from posgen.sampling import load, make_sample_fn, render_seeds
from posgen.viz import image_grid

# (shipped model, what its row shows)
MODELS = [
    ("digits-baseline", "baseline StyleGAN2: a periodic learned constant and zero padding; the digit moves by whole 8-px "
                        "cells only, repeats on the wide canvas and vanishes when zoomed"),
    ("digits-mspe", "MS-PE (Choi et al.) with zero padding: it reads the corner from the padding, so the digit stays "
                    "there when the grid moves"),
    ("digits-mspe-nopad", "padding-free MS-PE (Xu et al.): position from the encoding alone; the digit follows the grid"),
]
SEEDS = [0, 1, 2]
COLUMNS = [
    ("training canvas", Canvas()),
    ("shift 0,8", Canvas(shift=(0, 8))),
    ("shift 0,8.5", Canvas(shift=(0, 8.5))),
    ("shift 8,8", Canvas(shift=(8, 8))),
    ("zoom 2x", Canvas(zoom=2)),
    ("3x wider, shift 0,32", Canvas(size=(32, 96), shift=(0, 32))),
]
SCALE = 3  # nearest-neighbour enlargement of the pictures


def shipped_checkpoint(name: str) -> Path | None:
    return pretrained_path(name)


def demo_generator(name: str, out: Path, minutes: float, retrain: bool) -> tuple[Generator, str]:
    shipped = shipped_checkpoint(name)
    if shipped is not None and not retrain:
        G, _, state = load(str(shipped))
        return G, f"shipped, {state.get('kimg', 0):.0f} kimg"
    from posgen.presets import get_preset
    from posgen.training.loop import train

    run = out / f"run-{name}"
    done = (run / checkpoint.CHECKPOINT_NAME).exists()
    print(f"training {name} for up to {minutes:g} minutes into {run} ...", flush=True)
    train(get_preset(name), run, resume=done, max_seconds=minutes * 60)
    G, _, state = load(str(run))
    return G, f"trained here, {state['kimg']:.0f} kimg"


def shift_score(G: Generator, samples: int = 32) -> float:
    """Mean Σmin/Σmax similarity of the digit patch under circular shifts 1..16 px along x."""
    from posgen.metrics.shift_consistency import shift_consistency

    res = G.resolution
    return shift_consistency(make_sample_fn(G), grid=G.default_grid(), region=(0, 0, res // 2, res // 2),
                             max_shift=res // 2, step=1.0, axes=("x",), num_samples=samples)["mean"]


def model_row(G: Generator, caption: str) -> Image.Image:
    """The seeds (stacked) in every column's canvas, with the caption (one or more lines) above."""
    cells = []
    for title, canvas in COLUMNS:
        imgs = render_seeds(G, SEEDS, canvas.grid(G.default_grid()))
        col = Image.fromarray(image_grid(imgs, cols=1, pad=1, background=255))
        col = col.resize((col.width * SCALE, col.height * SCALE), Image.NEAREST)
        cells.append(_label(col, title))
    width = sum(c.width for c in cells) + 8 * (len(cells) - 1)
    top = 6 + 12 * (caption.count("\n") + 1)
    row = Image.new("RGB", (width + 8, max(c.height for c in cells) + top + 2), (255, 255, 255))
    ImageDraw.Draw(row).multiline_text((4, 3), caption, fill=(0, 0, 0), spacing=2)
    x = 4
    for c in cells:
        row.paste(c, (x, top))
        x += c.width + 8
    return row


def _label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 14), (255, 255, 255))
    out.paste(img, (0, 14))
    ImageDraw.Draw(out).text((2, 1), text, fill=(90, 90, 90))
    return out


def run_demo(out: Path, minutes: float = 6.0, retrain: bool = False) -> tuple[Path, dict[str, float]]:
    """Write OUT/digits-demo.png; returns its path and each model's shift consistency."""
    out.mkdir(parents=True, exist_ok=True)
    rows, scores = [], {}
    for name, what in MODELS:
        G, source = demo_generator(name, out, minutes, retrain)
        scores[name] = shift_score(G)
        rows.append(model_row(G, f"{name} ({source}), shift consistency {scores[name]:.2f}\n{what}"))
    width = max(r.width for r in rows)
    pic = Image.new("RGB", (width, sum(r.height for r in rows) + 24), (255, 255, 255))
    ImageDraw.Draw(pic).text((4, 4), "Same seeds, same grids: compare each column across the rows "
                             "(shift consistency: 1 = the digit moves intact with the grid)", fill=(0, 0, 0))
    y = 24
    for r in rows:
        pic.paste(r, (0, y))
        y += r.height
    path = out / "digits-demo.png"
    pic.save(path)
    return path, scores
