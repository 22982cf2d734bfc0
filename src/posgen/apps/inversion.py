"""Choi et al.'s inversion experiment (Sec. 4.1, Fig. 5, App. Fig. C) on the biased digits, the SeFa
edit-equivariance measurement, and the pan video comparing two models: the figures and numbers of
docs/apps.md, rerunnable on any checkpoints (`posgen project --experiment`).

Targets are digits the feature network never saw in training (`heldout_glyphs` of its training
seed; the GANs were trained on all 1,797 glyphs, in other colours and offsets), rendered with
the model's own data recipe at the training position and then transformed:

    train     at the training position (top-left 16x16 region)
    shift8    moved 8 px down and right (plain shift: nothing wraps)
    shift16   moved 16 px down and right: outside the region the training data ever used
    roll-8    circular shift 8 px up and left: the digit wraps across the borders into four corners
              (rolls by +8 and +16 equal the plain shifts for a digit that fills the top-left quarter)
    zoom2     zoomed 2x about the top-left corner: the glyph rendered twice as large, filling the canvas

Each target is projected into each model (w, StyleGAN2's projector, pixel MSE + digits-feature
distance, noise maps); PSNR (I_max = 2) and the digits-feature distance of the reconstruction are
reported per model and transform. With `grid=True` the grid's translation and scale are also
optimised, starting from the training grid.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from posgen.apps.projection import ProjectionConfig, project, psnr
from posgen.metrics.evaluate import to_json

TRANSFORMS = ("train", "shift8", "shift16", "roll-8", "zoom2")
MODELS = ("digits-baseline", "digits-mspe", "digits-mspe-nopad", "digits-cips")


def render_digit(glyph: np.ndarray, color: np.ndarray, top: int, left: int, size: int,
                 canvas: tuple[int, int], zoom: int = 1) -> torch.Tensor:
    """One digit as the biased-digits recipe draws it (bicubic upscale of the 8x8 glyph to `size`,
    times its colour, pasted at (top, left) on black), optionally rendered `zoom` times larger
    about the top-left corner and cropped to `canvas`: [3, H, W] in [-1, 1]."""
    g = torch.from_numpy(np.asarray(glyph, np.float32))[None, None]
    g = F.interpolate(g, size=(size * zoom, size * zoom), mode="bicubic", align_corners=False).clamp(0, 1)[0, 0]
    big = torch.zeros(3, max(canvas[0], (top + size) * zoom), max(canvas[1], (left + size) * zoom))
    col = torch.as_tensor(color, dtype=torch.float32).view(3, 1, 1)
    big[:, top * zoom:(top + size) * zoom, left * zoom:(left + size) * zoom] = g * col
    img = big[:, :canvas[0], :canvas[1]].round().clamp(0, 255)
    return img / 127.5 - 1


def heldout_targets(data_cfg, count: int = 10, seed: int = 1) -> tuple[dict[str, torch.Tensor], list[int]]:
    """transform -> targets [count, 3, H, W] (see the module docstring), and the glyph indices used:
    the first held-out glyph of each class, then the next ones, in class order."""
    import colorsys

    from posgen.metrics.digits_features import heldout_glyphs, load_glyphs

    glyphs, labels = load_glyphs()
    held = heldout_glyphs(0)
    by_class = [[int(i) for i in held if labels[i] == c] for c in range(10)]
    picks = [by_class[k % 10][k // 10] for k in range(count)]
    rng = np.random.default_rng(seed)
    d = data_cfg.digits
    canvas = tuple(d.canvas)
    top, left, rh, rw = d.region
    size = min(rh, rw) - d.jitter
    off = d.jitter // 2  # the middle of the jitter range
    out: dict[str, list[torch.Tensor]] = {t: [] for t in TRANSFORMS}
    for i in picks:
        color = np.array(colorsys.hsv_to_rgb(rng.uniform(), 1.0, 1.0)) * 255 if d.colors is None else \
            np.asarray(d.colors[rng.integers(len(d.colors))], np.float64)
        base = render_digit(glyphs[i], color, top + off, left + off, size, canvas)
        shifted = lambda k: F.pad(base, (k, 0, k, 0), value=-1.0)[:, :canvas[0], :canvas[1]]  # noqa: E731
        out["train"].append(base)
        out["shift8"].append(shifted(8))
        out["shift16"].append(shifted(16))
        out["roll-8"].append(torch.roll(base, (-8, -8), dims=(1, 2)))
        out["zoom2"].append(render_digit(glyphs[i], color, top + off, left + off, size, canvas, zoom=2))
    return {t: torch.stack(v) for t, v in out.items()}, picks


@dataclass
class ExperimentSettings:
    models: tuple[str, ...] = MODELS
    count: int = 10                     # held-out digits per transform
    steps: int = 300
    grid_count: int = 3                 # digits per transform for the "w + grid" variant (0: skip it)
    transforms: tuple[str, ...] = TRANSFORMS
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)


def inversion_experiment(out: str | Path, settings: ExperimentSettings = ExperimentSettings(),
                         progress: bool = True) -> dict:
    """Project every target into every model; writes OUT/inversion.json, inversion.png and the
    per-model reconstructions; returns the record."""
    from posgen.sampling import load
    from posgen.viz import save_panels

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"settings": {"count": settings.count, "steps": settings.steps, "grid_count": settings.grid_count,
                                 "transforms": list(settings.transforms)}, "models": {}}
    rows: dict[str, list[torch.Tensor]] = {}
    targets = None
    for name in settings.models:
        G, cfg, state = load(name)
        if targets is None:
            targets, picks = heldout_targets(cfg.data, settings.count)
            record["glyphs"] = picks
            rows["target"] = [targets[t][:4] for t in settings.transforms]
        pcfg = replace(settings.projection, steps=settings.steps)
        batch = torch.cat([targets[t] for t in settings.transforms])
        t0 = time.time()
        res = project(G, batch, pcfg, data_source=cfg.data.source, progress=progress, model=name)
        per: dict = {"kimg": state.get("kimg"), "seconds": round(time.time() - t0, 1)}
        k = settings.count
        ink = ink_psnr(res.images, batch)
        for j, t in enumerate(settings.transforms):
            sl = slice(j * k, (j + 1) * k)
            per[t] = {"psnr": round(float(res.psnr[sl].mean()), 3), "psnr_std": round(float(res.psnr[sl].std()), 3),
                      "ink_psnr": round(float(ink[sl].mean()), 3),
                      "feature": round(float(res.feature_distance[sl].mean()), 4)}
        rows[name] = [res.images[j * k:j * k + 4] for j in range(len(settings.transforms))]
        if settings.grid_count and "shift" in G.capabilities:
            g = settings.grid_count
            sub = torch.cat([targets[t][:g] for t in settings.transforms])
            gres = project(G, sub, replace(pcfg, optimize_grid=True), data_source=cfg.data.source,
                           progress=progress, model=name)
            gink = ink_psnr(gres.images, sub)
            for j, t in enumerate(settings.transforms):
                sl = slice(j * g, (j + 1) * g)
                per[t]["grid_psnr"] = round(float(gres.psnr[sl].mean()), 3)
                per[t]["grid_ink_psnr"] = round(float(gink[sl].mean()), 3)
                per[t]["grid_feature"] = round(float(gres.feature_distance[sl].mean()), 4)
                per[t]["grid_found"] = [_grid_summary(gr) for gr in gres.grids[sl]]
            rows[f"{name} +grid"] = [gres.images[j * g:(j + 1) * g] for j in range(len(settings.transforms))]
        record["models"][name] = per
        (out / "inversion.json").write_text(to_json(record) + "\n")
    save_panels(rows, list(settings.transforms), out / "inversion.png", zoom=3)
    return record


def ink_psnr(images: torch.Tensor, target: torch.Tensor, dilate: int = 2) -> torch.Tensor:
    """Per-image PSNR (dB, I_max 2) over the target's digit only: pixels where any channel of the
    target is lit (above -0.9), dilated by `dilate` px. Whole-image PSNR of a mostly black canvas
    rewards a dark blur; this does not."""
    mask = (target.amax(dim=1, keepdim=True) > -0.9).float()
    mask = F.max_pool2d(mask, 2 * dilate + 1, stride=1, padding=dilate)  # [N, 1, H, W]
    se = ((images.float() - target.float()).square() * mask).sum(dim=(1, 2, 3))
    mse = se / (mask.sum(dim=(1, 2, 3)) * images.shape[1]).clamp_min(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def _grid_summary(grid) -> dict:
    a = grid.affine
    s = float(a[0, 0])
    off = (s - 1) / 2
    return {"dy": round(off - float(a[1, 2]), 2), "dx": round(off - float(a[0, 2]), 2), "zoom": round(1 / s, 3)}


def inversion_table(record: dict) -> str:
    """A markdown table per model and transform: PSNR / digit-region PSNR (dB) / feature distance."""
    transforms = record["settings"]["transforms"]
    lines = ["| model | " + " | ".join(transforms) + " |", "|---|" + "---|" * len(transforms)]

    def cell(v: dict, p: str) -> str:
        return f"{v[p + 'psnr']:.1f} / {v[p + 'ink_psnr']:.1f} / {v[p + 'feature']:.3f}"

    for name, per in record["models"].items():
        lines.append(f"| {name} (w) | " + " | ".join(cell(per[t], "") for t in transforms) + " |")
        if "grid_psnr" in per[transforms[0]]:
            lines.append(f"| {name} (w + grid) | " + " | ".join(cell(per[t], "grid_") for t in transforms) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ SeFa equivariance

@torch.no_grad()
def sefa_equivariance(out: str | Path, models: tuple[str, ...] = ("digits-baseline", "digits-mspe", "digits-mspe-nopad", "digits-cips"),
                      directions: int = 3, shifts: tuple[int, ...] = (8, 5),
                      strengths: tuple[float, ...] = (-3.0, -1.5, 0.0, 1.5, 3.0), samples: int = 64) -> dict:
    """Edit along the top SeFa directions at the training position and on grids shifted by each of
    `shifts` px (down and right); measure whether the shifted edit is the edit shifted.

    Per model and shift k: `image_psnr`, PSNR (dB, I_max 2) between the edited render on the shifted
    grid and the edited training-position render shifted by k px, over the overlap; `delta_error`, the
    relative L2 error between the edit's change (edited - unedited) on the shifted grid and that
    change at the training position shifted (0: the same edit at both positions). Means over
    `samples` seeds, every top direction and every non-zero strength. The figure shows seed 0 at the
    first shift. Writes OUT/sefa.png, sefa.json.
    """
    from posgen.apps.sefa import factorize, render_edits
    from posgen.models.base import RenderOptions
    from posgen.sampling import load
    from posgen.viz import save_panels

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"shifts": list(shifts), "strengths": list(strengths), "directions": directions, "samples": samples}
    rows: dict[str, list[torch.Tensor]] = {}
    for name in models:
        G, cfg, _ = load(name)
        f = factorize(G)
        grid0 = G.default_grid()
        opts = RenderOptions(noise_mode="const") if "noise" in G.capabilities else RenderOptions()
        ws = G.mapping(G.latents(list(range(samples))))[:, None].expand(-1, G.num_ws, -1)
        nonzero = [s for s in strengths if s != 0]
        per: dict = {"eigenvalue_share": [round(float(v), 4) for v in (f.values[:directions] / f.values.sum())]}
        for shift in shifts:
            grid1 = grid0.shift(shift, shift)
            psnrs, errs = [], []
            for d in range(directions):
                e0 = render_edits(G, ws, f, d, [0.0, *nonzero], grid0, opts)  # [S, N, C, H, W]
                e1 = render_edits(G, ws, f, d, [0.0, *nonzero], grid1, opts)
                a = e1[..., shift:, shift:]             # shifted render, where the shifted image is defined
                b = e0[..., :-shift, :-shift]           # training render, moved by `shift`
                for k in range(1, len(nonzero) + 1):
                    psnrs.append(psnr(a[k], b[k]))
                    da, db = a[k] - a[0], b[k] - b[0]
                    errs.append((da - db).flatten(1).norm(dim=1) / db.flatten(1).norm(dim=1).clamp_min(1e-8))
            per[f"shift{shift}"] = {"image_psnr": round(float(torch.cat(psnrs).mean()), 3),
                                    "delta_error": round(float(torch.cat(errs).mean()), 4)}
        record[name] = per
        # figure: seed 0, each direction a row, strengths as columns; at the training position and shifted
        for d in range(directions):
            e0 = render_edits(G, ws[:1], f, d, strengths, grid0, opts)[:, 0]
            e1 = render_edits(G, ws[:1], f, d, strengths, grid0.shift(shifts[0], shifts[0]), opts)[:, 0]
            rows[f"{name} dir {d}"] = [e0, e1]
    columns = [f"training position, strengths {', '.join(f'{s:g}' for s in strengths)}",
               f"grid shifted by {shifts[0]} px"]
    save_panels(rows, columns, out / "sefa.png", zoom=3)
    (out / "sefa.json").write_text(to_json(record) + "\n")
    return record


def pan_video(out: str | Path, models: tuple[str, ...] = ("digits-baseline", "digits-mspe"),
              seeds: tuple[int, ...] = (0, 1, 2, 3), seconds: float = 5.0, fps: float = 10) -> dict:
    """A `seconds`-long sub-pixel pan (one canvas width to the right, 0.64 px per frame at 10 fps) of the
    same seeds in each model, one row per model: OUT/pan.gif."""
    from posgen.apps.video import VideoConfig, render_video
    from posgen.sampling import load

    loaded = [(name, load(name)[0]) for name in models]
    res = loaded[0][1].resolution
    cfg = VideoConfig(kind="pan", frames=round(seconds * fps), fps=fps, pan=(0.0, float(res)), upscale=3,
                      colors=64)
    return render_video(loaded, list(seeds), cfg, Path(out) / "pan.gif", progress=True)


def write_markdown(out: Path, inversion: dict | None, sefa: dict | None) -> None:
    """OUT/apps-numbers.md: the measured tables (docs/apps.md quotes them)."""
    parts = []
    if inversion:
        parts += ["## Inversion (PSNR dB / digit-region PSNR dB / digits-feature distance)", "",
                  inversion_table(inversion), ""]
    if sefa:
        shifts = sefa["shifts"]
        parts += ["## SeFa edit equivariance (image PSNR dB / edit-delta error)", "",
                  "| model | " + " | ".join(f"shift {k} px" for k in shifts) + " |", "|---|" + "---|" * len(shifts)]
        parts += [f"| {m} | " + " | ".join(f"{v[f'shift{k}']['image_psnr']:.1f} / {v[f'shift{k}']['delta_error']:.3f}"
                                           for k in shifts) + " |" for m, v in sefa.items() if isinstance(v, dict)]
    (out / "apps-numbers.md").write_text("\n".join(parts) + "\n")


def run_all(out: str | Path, settings: ExperimentSettings = ExperimentSettings(), parts=("inversion", "sefa", "video")) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    inv = inversion_experiment(out, settings) if "inversion" in parts else None
    sefa = sefa_equivariance(out) if "sefa" in parts else None
    video = pan_video(out) if "video" in parts else None
    if inv is None and (out / "inversion.json").is_file():
        inv = json.loads((out / "inversion.json").read_text())
    if sefa is None and (out / "sefa.json").is_file():
        sefa = json.loads((out / "sefa.json").read_text())
    write_markdown(out, inv, sefa)
    return {"inversion": inv, "sefa": sefa, "video": video}


__all__ = ["ExperimentSettings", "MODELS", "TRANSFORMS", "heldout_targets", "inversion_experiment", "inversion_table",
           "pan_video", "render_digit", "run_all", "sefa_equivariance"]


def digit_image(data_cfg, glyph: int, shift: tuple[float, float] | None = None, roll: bool = False,
                zoom: int = 1, seed: int = 0) -> torch.Tensor:
    """Glyph `glyph` of scikit-learn's digits drawn as the model's biased-digits data draws it (a
    colour from `seed`, the middle of the jitter range), zoomed `zoom` times about the top-left
    corner, then moved by `shift` (dy, dx) whole pixels (plain, or circular with `roll`): [1, 3, H, W]."""
    import colorsys

    from posgen.errors import DataError
    from posgen.metrics.digits_features import load_glyphs

    if data_cfg.source != "digits":
        raise DataError(f"--digit draws from the biased digits; this model was trained on {data_cfg.source!r} "
                        "(give --image)")
    glyphs, _ = load_glyphs()
    if not 0 <= glyph < len(glyphs):
        raise DataError(f"--digit {glyph}: there are {len(glyphs)} digits (0-{len(glyphs) - 1})")
    if zoom not in (1, 2, 4):
        raise DataError(f"--target-zoom must be 1, 2 or 4, got {zoom}")
    d = data_cfg.digits
    rng = np.random.default_rng(seed)
    color = np.array(colorsys.hsv_to_rgb(rng.uniform(), 1.0, 1.0)) * 255 if d.colors is None else \
        np.asarray(d.colors[rng.integers(len(d.colors))], np.float64)
    top, left, rh, rw = d.region
    off = d.jitter // 2
    img = render_digit(glyphs[glyph], color, top + off, left + off, min(rh, rw) - d.jitter, tuple(d.canvas), zoom)
    if shift is not None:
        dy, dx = (int(round(v)) for v in shift)
        if roll:
            img = torch.roll(img, (dy, dx), dims=(1, 2))
        else:
            h, w = img.shape[1:]
            padded = F.pad(img, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), value=-1.0)
            img = padded[:, max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w]
    return img[None]
