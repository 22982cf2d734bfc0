"""`posgen demo`: the digits MS-PE generator drawing the same digits at several shifts and on a
wider canvas. Uses the checkpoint shipped in posgen/assets when there is one, else trains
the `digits-mspe` preset for a few minutes (resuming an interrupted demo run)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from posgen import checkpoint
from posgen.grid import Grid
from posgen.models import Generator
from posgen.pretrained import pretrained_path
from posgen.sampling import load, render_seeds
from posgen.viz import image_grid

SHIPPED = "digits-mspe"  # name in posgen.pretrained.PRETRAINED
SEEDS = [0, 1, 2, 3, 4, 5]
SHIFTS = [(0.0, 0.0), (0.0, 4.0), (0.0, 8.5), (0.0, 16.0), (6.0, 3.0), (16.0, 16.0)]
SCALE = 4  # nearest-neighbour enlargement of the 32x32 pictures


def shipped_checkpoint() -> Path | None:
    return pretrained_path(SHIPPED)


def demo_generator(out: Path, minutes: float, retrain: bool) -> tuple[Generator, str]:
    shipped = shipped_checkpoint()
    if shipped is not None and not retrain:
        G, _, state = load(str(shipped))
        return G, f"shipped checkpoint ({state.get('kimg', 0):.0f} kimg)"
    from posgen.presets import get_preset
    from posgen.training.loop import train

    run = out / "run"
    done = (run / checkpoint.CHECKPOINT_NAME).exists()
    cfg = get_preset("digits-mspe")
    print(f"training digits-mspe for up to {minutes:g} minutes into {run} ...", flush=True)
    train(cfg, run, resume=done, max_seconds=minutes * 60)
    G, _, state = load(str(run))
    return G, f"trained here ({state['kimg']:.0f} kimg, {state['seconds'] / 60:.1f} min)"


def _label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 14), (255, 255, 255))
    out.paste(img, (0, 14))
    ImageDraw.Draw(out).text((2, 1), text, fill=(0, 0, 0))
    return out


def shift_picture(G: Generator, title: str) -> Image.Image:
    """Columns: the same seeds at each shift; last panel: a 3x wider canvas."""
    res = G.resolution
    panels = []
    for dy, dx in SHIFTS:
        imgs = render_seeds(G, SEEDS, Grid(res, res).shift(dy, dx))
        panels.append((f"shift {dy:g},{dx:g}", imgs))
    cols = []
    for name, imgs in panels:
        cols.append(_label(_column(imgs), name))
    wide = render_seeds(G, SEEDS, Grid(res, 3 * res).shift(0, res))
    cols.append(_label(_column(wide), f"{res}x{3 * res} canvas, shift 0,{res}"))
    width = sum(c.width for c in cols) + 6 * (len(cols) - 1)
    height = max(c.height for c in cols)
    pic = Image.new("RGB", (width + 8, height + 30), (255, 255, 255))
    ImageDraw.Draw(pic).text((4, 4), title, fill=(0, 0, 0))
    x = 4
    for c in cols:
        pic.paste(c, (x, 24))
        x += c.width + 6
    return pic


def _column(images: torch.Tensor) -> Image.Image:
    """[N, 3, H, W] -> one column, enlarged SCALE times."""
    col = Image.fromarray(image_grid(images, cols=1, pad=1, background=255))
    return col.resize((col.width * SCALE, col.height * SCALE), Image.NEAREST)


def run_demo(out: Path, minutes: float = 6.0, retrain: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    G, source = demo_generator(out, minutes, retrain)
    pic = shift_picture(G, f"posgen digits-mspe, {source}: same seeds (rows) at shifts (DY,DX px) and on a wider canvas")
    path = out / "digits-shifts.png"
    pic.save(path)
    return path
