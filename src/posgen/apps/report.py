"""`posgen report`: a self-contained HTML report card (and the JSON behind it) comparing
generators side by side: samples on shifted / rolled / zoomed / wider grids, shift-consistency
curves (Choi Fig. 2d), per-pixel noise std maps (Choi Fig. 4), equivariance (StyleGAN3) and
FID at 1x, 1.5x and 2x canvas (Choi Table 1). Every image is embedded as a data URI.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from posgen.grid import Canvas, Grid
from posgen.metrics.evaluate import EvalOptions, evaluate, to_json
from posgen.metrics.shift_consistency import grayscale, plot_curves
from posgen.sampling import load, make_sample_fn, render_seeds, seed_latents
from posgen.viz import image_grid

SEEDS = list(range(6))
SCALES = (1.0, 1.5, 2.0)


@dataclass
class ReportSettings:
    fid_samples: int = 2000      # generated images per FID scale
    eq_samples: int = 64
    shift_samples: int = 32
    noise_draws: int = 100       # noise maps per latent for the std maps (Choi Fig. 4: 100)
    noise_latents: int = 4
    progress: bool = True


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png(array: np.ndarray, scale: int = 1) -> str:
    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def sample_panels(G, res: int) -> dict[str, torch.Tensor]:
    """The same seeds on the training grid and on transformed grids (named relative to the canvas
    size R, so that models of different resolutions share the panels)."""
    canvases = {
        "training grid": Canvas(),
        "shift (R/4, R/4 + 0.5)": Canvas(shift=(res // 4, res // 4 + 0.5)),
        "roll (0, R/2)": Canvas(shift=(0, res // 2), roll=True),
        "zoom 2x": Canvas(zoom=2),
        "2x wider": Canvas(size=(res, 2 * res)),
    }
    return {name: render_seeds(G, SEEDS, canvas.grid(G.default_grid())) for name, canvas in canvases.items()}


@torch.no_grad()
def noise_std_map(G, res: int, latents: int, draws: int) -> np.ndarray:
    """Per-pixel std of luma over `draws` random noise maps for fixed latents: [latents, H, W]."""
    z = seed_latents(list(range(latents)), G.cfg.z_dim)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        mode = "random" if "noise" in G.capabilities else "off"  # a family without noise: zero std
        stack = torch.stack([grayscale(G(z, Grid(res, res), noise_mode=mode)) for _ in range(draws)])
    finally:
        torch.random.set_rng_state(gen_state)
    return stack.std(dim=0).numpy()  # [latents, H, W]


def _colormap(maps: np.ndarray, vmax: float) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["magma"]
    tiles = [(cmap(np.clip(m / max(vmax, 1e-8), 0, 1))[..., :3] * 255).astype(np.uint8) for m in maps]
    pad = np.full((maps.shape[1], 2, 3), 40, dtype=np.uint8)
    return np.concatenate([x for t in tiles for x in (t, pad)][:-1], axis=1)


def _shift_plot(result: dict) -> str:
    buf = io.BytesIO()
    plot_curves(result, buf)
    return _data_uri(buf.getvalue())


def model_report(checkpoint: str, settings: ReportSettings) -> dict:
    """Numbers and pictures for one generator."""
    G, cfg, state = load(checkpoint)
    res = G.resolution
    sample_fn = make_sample_fn(G, noise_mode="const")
    region = tuple(cfg.data.digits.region) if cfg.data.source == "digits" else None
    entry: dict = {"checkpoint": str(checkpoint), "preset": cfg.name, "kimg": state.get("kimg"), "resolution": res}
    panels = sample_panels(G, res)
    entry["_samples"] = {name: _png(image_grid(imgs, cols=len(SEEDS)), scale=max(1, 96 // res))
                         for name, imgs in panels.items()}
    entry["_noise_std"] = noise_std_map(G, res, settings.noise_latents, settings.noise_draws)
    entry["noise_std_mean"] = float(entry["_noise_std"].mean())
    base = EvalOptions(grid=Grid(res, res), num_samples=settings.fid_samples, feature_extractor="digits"
                       if cfg.data.source == "digits" else "inception", region=region,
                       eq_samples=settings.eq_samples, shift_samples=settings.shift_samples, shift_step=1.0,
                       progress=settings.progress)
    names = ["eqt", "eqt-frac", "eqr"] + (["shift-consistency"] if region else [])
    entry["metrics"] = evaluate(sample_fn, names, base)
    if region:
        entry["_shift_plot"] = _shift_plot(entry["metrics"]["shift-consistency"])
    entry["fid"] = {}
    for scale in SCALES:
        opts = dataclasses.replace(base, grid=Canvas(zoom=scale).grid(G.default_grid()))
        fid = evaluate(sample_fn, ["fid"], opts, data=cfg.data, training_size=(res, res))["fid"]
        entry["fid"][f"{scale:g}x"] = fid["fid"]
    entry["feature_extractor"] = base.feature_extractor
    return entry


def write_report(checkpoints: list[str], out: str | Path, settings: ReportSettings | None = None) -> Path:
    """Write DIR/report.html (self-contained) and DIR/report.json; returns the HTML path."""
    settings = settings or ReportSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = [model_report(c, settings) for c in tqdm(checkpoints, desc="models", disable=not settings.progress)]
    vmax = max(float(np.percentile(e["_noise_std"], 99)) for e in entries)
    for e in entries:
        e["_noise_png"] = _png(_colormap(e["_noise_std"], vmax), scale=max(1, 96 // e["resolution"]))
    public = [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries]
    (out / "report.json").write_text(to_json({"models": public, "noise_std_vmax": vmax}) + "\n")
    path = out / "report.html"
    path.write_text(render_html(entries, vmax))
    return path


def _fmt(v) -> str:
    if isinstance(v, float):
        return "inf" if v == float("inf") else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return html.escape(str(v))


def render_html(entries: list[dict], vmax: float) -> str:
    cols = "".join(f"<th>{html.escape(e['preset'])}<br><small>{html.escape(e['checkpoint'])}</small></th>"
                   for e in entries)
    rows = [("kimg", lambda e: e["kimg"])]
    rows += [(f"FID {s}", lambda e, s=s: e["fid"][s]) for s in entries[0]["fid"]]
    rows += [(m.upper() + " (dB)", lambda e, m=m: e["metrics"][m][m]) for m in ("eqt", "eqt-frac", "eqr")]
    if all("shift-consistency" in e["metrics"] for e in entries):
        rows.append(("shift consistency", lambda e: e["metrics"]["shift-consistency"]["mean"]))
    rows.append(("noise std (mean)", lambda e: e["noise_std_mean"]))
    table = "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{_fmt(fn(e))}</td>" for e in entries) + "</tr>"
                    for name, fn in rows)
    sections = []
    for panel in entries[0]["_samples"]:
        imgs = "".join(f"<td><img src='{e['_samples'][panel]}'></td>" for e in entries)
        sections.append(f"<h3>samples: {html.escape(panel)}</h3><table><tr>{cols}</tr><tr>{imgs}</tr></table>")
    if all("_shift_plot" in e for e in entries):
        imgs = "".join(f"<td><img src='{e['_shift_plot']}'></td>" for e in entries)
        sections.append(f"<h3>shift consistency (Choi Fig. 2d)</h3><table><tr>{cols}</tr><tr>{imgs}</tr></table>")
    imgs = "".join(f"<td><img src='{e['_noise_png']}'></td>" for e in entries)
    sections.append(f"<h3>per-pixel std over noise maps, fixed latents (Choi Fig. 4; black 0, white "
                    f"{vmax:.3f})</h3><table><tr>{cols}</tr><tr>{imgs}</tr></table>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>posgen report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:center}}
img{{image-rendering:pixelated;max-width:100%}}</style></head><body>
<h1>posgen report</h1>
<p>FID with the {html.escape(", ".join(sorted({e["feature_extractor"] for e in entries})))} feature network against real data prepared at each
canvas size; EQ metrics in dB (PSNR, I<sub>max</sub> = 2, const noise); shift consistency is
the mean Σmin/Σmax similarity over circular shifts of 1…N px.</p>
<table><tr><th></th>{cols}</tr>{table}</table>
{''.join(sections)}
<script type="application/json" id="data">{html.escape(to_json([{k: v for k, v in e.items() if not k.startswith('_')} for e in entries]))}</script>
</body></html>
"""
