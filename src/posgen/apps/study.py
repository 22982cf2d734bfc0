"""`posgen study`: the spatial-bias study on the biased digits (docs/study.md), one function per
finding, each writing its figure(s) to OUT and returning the numbers behind them.

    f1  shift consistency under 1-px shifts 0..canvas, x and y       (Choi Fig. 2d)
    f2  per-pixel std over noise maps for fixed latents              (Choi Fig. 4)
    f3  FID at 1x / 1.5x / 2x canvas, zoomed ("interp")              (Choi Table 1)
    f4  the constant input filled with a uniform value               (Xu Fig. 3)
    f5  zero padding vs padding-free constant / CSG / SPE: FID, SWD  (Xu Tables 2-4)
    f6  MS-PIE variants at 1x, 1.5x, 2x canvas, one model each       (Xu Table 5)
    eq  EQ-T / EQ-T-frac / EQ-R and generation beyond the border    (StyleGAN3; Choi Fig. 8)
    f8  StyleGAN3-T/-R beside StyleGAN2: EQ at initialisation and after training, texture sticking
                                                                     (Karras et al. 2021, Tab. / Fig. 1)

The models are the shipped ones (`posgen pretrained`); `models` remaps any name to another
checkpoint, e.g. to run the study on your own (larger) runs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from posgen.encodings import LearnedConstant
from posgen.apps._runner import FigureRun
from posgen.grid import Canvas, Grid
from posgen.metrics.evaluate import EvalOptions, evaluate
from posgen.metrics.shift_consistency import grayscale, shift_consistency
from posgen.sampling import make_sample_fn, render_seeds
from posgen.viz import pyplot, save_panels

CHOI = ("digits-baseline", "digits-sspe", "digits-mspe")
PADDING = ("digits-baseline", "digits-nopad", "digits-csg-nopad", "digits-sspe-nopad", "digits-mspe-nopad")
MSPIE = ("digits-baseline", "digits-mspie-const", "digits-mspie-csg", "digits-mspie-spe-interp", "digits-mspie")
UNIFORM = ("digits-baseline", "digits-nopad")
ALIAS_FREE = ("digits-baseline", "digits-mspe", "digits-mspe-nopad", "digits-sg3t", "digits-sg3r")
SHIFT_INVARIANT = tuple(dict.fromkeys(CHOI + PADDING + MSPIE))  # the StyleGAN2 variants
EVERY = tuple(dict.fromkeys(SHIFT_INVARIANT + ALIAS_FREE))
FILL_VALUES = (0.0, 0.5, 1.0)
SEEDS = list(range(8))


@dataclass
class StudySettings:
    fid_samples: int = 10000     # generated images per FID / SWD figure
    shift_samples: int = 256     # latents per shift-consistency curve
    eq_samples: int = 256
    noise_draws: int = 100       # Choi Fig. 4 uses 100 noise maps
    noise_latents: int = 4
    border: int = 4              # F4: width of the border band in pixels
    models: dict[str, str] = field(default_factory=dict)  # name -> checkpoint to use instead
    progress: bool = True


class Study(FigureRun):
    def __init__(self, out: str | Path, settings: StudySettings | None = None) -> None:
        super().__init__(out, settings or StudySettings())

    # ---- helpers --------------------------------------------------------------------------
    def checkpoint(self, name: str) -> str:
        """The shipped model `name`, or its replacement from settings.models."""
        return self.settings.models.get(name, name)

    def _options(self, grid: Grid) -> EvalOptions:
        return EvalOptions(grid=grid, num_samples=self.settings.fid_samples, feature_extractor="digits",
                           eq_samples=self.settings.eq_samples, progress=self.settings.progress)

    def distribution(self, name: str, metrics: list[str], grid: Grid) -> dict:
        G, cfg, _ = self.model(name)
        res = G.resolution
        return evaluate(make_sample_fn(G), metrics, self._options(grid), data=cfg.data, training_size=(res, res))

    def _describe(self, names) -> dict:
        return {n: {"checkpoint": self.checkpoint(n), "kimg": self.model(n)[2].get("kimg")} for n in names}

    # ---- findings -------------------------------------------------------------------------
    def f1(self, names=CHOI) -> dict:
        """Shift consistency for circular 1-px shifts over the whole canvas, along x and y."""
        curves = {}
        for name in names:
            G, cfg, _ = self.model(name)
            res = G.resolution
            curves[name] = shift_consistency(make_sample_fn(G), grid=Grid(res, res), region=tuple(cfg.data.digits.region),
                                             max_shift=res, step=1.0, num_samples=self.settings.shift_samples,
                                             progress=self.settings.progress)
        stride = {n: self.model(n)[0].coarsest_stride for n in names}
        _plot_shift_curves(curves, stride, self.out / "f1-shift-consistency.png")
        summary = {}
        for n, r in curves.items():
            s = stride[n]
            off = [v for c in r["curves"].values() for k, v in enumerate(c) if k % s]
            on = [v for c in r["curves"].values() for k, v in enumerate(c) if k and k % s == 0]
            summary[n] = {"mean": r["mean"], "min": min(v for c in r["curves"].values() for v in c),
                          "mean_at_stride_multiples": float(np.mean(on)), "mean_elsewhere": float(np.mean(off)),
                          "curves": r["curves"], "shifts": r["shifts"]}
        return {"models": self._describe(names), "coarsest_stride": stride, "results": summary}

    def f2(self, names=CHOI) -> dict:
        """Per-pixel std of luma over noise draws for fixed latents, with the digit region split out."""
        from posgen.apps.report import noise_std_map

        maps, results = {}, {}
        for name in tqdm(names, desc="noise std", disable=not self.settings.progress):
            G, cfg, _ = self.model(name)
            m = noise_std_map(G, G.resolution, self.settings.noise_latents, self.settings.noise_draws)
            top, left, h, w = cfg.data.digits.region
            inside = np.zeros(m.shape[1:], dtype=bool)
            inside[top:top + h, left:left + w] = True
            maps[name] = m
            results[name] = {"mean": float(m.mean()), "max": float(m.max()), "region_mean": float(m[:, inside].mean()),
                             "outside_mean": float(m[:, ~inside].mean())}
        vmax = max(float(np.percentile(m, 99.5)) for m in maps.values())
        _plot_maps(maps, vmax, self.out / "f2-noise-std.png")
        return {"models": self._describe(names), "draws": self.settings.noise_draws, "vmax": vmax, "results": results}

    def f3(self, names=CHOI, scales=(1.0, 1.5, 2.0)) -> dict:
        """FID on canvases zoomed 1x / 1.5x / 2x against real data prepared at each size."""
        results, panels = {}, {}
        for name in names:
            G = self.model(name)[0]
            results[name], panels[name] = {}, []
            for s in scales:
                grid = Canvas(zoom=s).grid(G.default_grid())
                results[name][f"{s:g}x"] = self.distribution(name, ["fid"], grid)["fid"]["fid"]
                panels[name].append(render_seeds(G, SEEDS[:6], grid))
        _plot_lines(results, "canvas scale (zoom)", "FID (digits features)", self.out / "f3-multiscale-fid.png")
        save_panels(panels, [f"{s:g}x" for s in scales], self.out / "f3-samples.png")
        return {"models": self._describe(names), "fid_samples": self.settings.fid_samples, "results": results}

    def f4(self, names=UNIFORM, values=FILL_VALUES) -> dict:
        """Fill the learned constant with one value; measure how far the output is from uniform."""
        results, rows = {}, {}
        b = self.settings.border
        for name in names:
            G = self.model(name)[0]
            images = [render_seeds(G, SEEDS, noise_mode="off")]
            results[name] = {"padding": G.cfg.padding}
            for v in values:
                img = render_seeds(uniform_constant(G, v), SEEDS, noise_mode="off")
                images.append(img)
                results[name][f"fill {v:g}"] = spatial_uniformity(img, b)
            rows[name] = images
        save_panels(rows, ["learned constant"] + [f"filled with {v:g}" for v in values], self.out / "f4-uniform-constant.png")
        return {"models": self._describe(names), "border_px": b, "noise": "off", "results": results}

    def f5(self, names=PADDING) -> dict:
        """FID and SWD on the training canvas for zero-padded and padding-free generators."""
        results = {}
        for name in names:
            G = self.model(name)[0]
            res = G.resolution
            r = self.distribution(name, ["fid", "swd"], Grid(res, res))
            results[name] = {"padding": G.cfg.padding, "input": G.cfg.input, "scale_encoding": G.cfg.scale_encoding,
                             "fid": r["fid"]["fid"], "swd": r["swd"]["swd"], "swd_levels": r["swd"]["swd_levels"]}
        save_panels({n: [render_seeds(self.model(n)[0], SEEDS)] for n in names}, ["samples"], self.out / "f5-samples.png")
        return {"models": self._describe(names), "fid_samples": self.settings.fid_samples, "results": results}

    def f6(self, names=MSPIE, scales=(1.0, 1.5, 2.0)) -> dict:
        """FID at each canvas size, each model rendering larger canvases the way it was trained."""
        results, panels = {}, {}
        for name in names:
            G, cfg, _ = self.model(name)
            mode = canvas_mode(cfg)
            results[name] = {"canvas": mode}
            panels[name] = []
            sizes = [round(G.resolution * s) for s in scales]
            for s in sizes:
                grid = Canvas.multiscale(s, mode, G.resolution).grid(G.default_grid())
                results[name][str(s)] = self.distribution(name, ["fid"], grid)["fid"]["fid"]
                panels[name].append(render_seeds(G, SEEDS[:4], grid))
        _plot_lines({n: {k: v for k, v in r.items() if k != "canvas"} for n, r in results.items()},
                    "canvas size (px)", "FID (digits features)", self.out / "f6-mspie-fid.png")
        save_panels(panels, [f"{s}x{s}" for s in sizes], self.out / "f6-samples.png")
        return {"models": self._describe(names), "fid_samples": self.settings.fid_samples, "results": results}

    def eq(self, names=SHIFT_INVARIANT) -> dict:
        """EQ-T, EQ-T-frac, EQ-R for every model, and renders on a canvas 3x wider than trained."""
        results, panels = {}, {}
        for name in names:
            G = self.model(name)[0]
            res = G.resolution
            opts = self._options(Grid(res, res))
            r = evaluate(make_sample_fn(G), ["eqt", "eqt-frac", "eqr"], opts)
            results[name] = {k: r[k][k] for k in ("eqt", "eqt-frac", "eqr")}
            panels[name] = [render_seeds(G, SEEDS[:3], Canvas(size=(res, 3 * res)).grid(G.default_grid()))]
        save_panels(panels, ["3x wider canvas"], self.out / "eq-beyond-border.png", cols=1)
        return {"models": self._describe(names), "eq_samples": self.settings.eq_samples, "results": results}

    def f8(self, names=ALIAS_FREE) -> dict:
        """EQ-T, EQ-T-frac, EQ-R of each model after training and of a fresh generator of the same
        config (seed 0), and the texture-sticking view of a slow pan (posgen.apps.sticking)."""
        from posgen.apps.sticking import StickingConfig, sticking_figure

        metrics = ("eqt", "eqt-frac", "eqr")
        results = {}
        for name in names:
            G, cfg, _ = self.model(name)
            res = G.resolution
            torch.manual_seed(0)
            fresh = type(G).build(cfg).eval()
            opts = self._options(Grid(res, res))
            results[name] = {when: {k: r[k][k] for k in metrics} for when, r in (
                ("initialisation", evaluate(make_sample_fn(fresh), list(metrics), opts)),
                ("trained", evaluate(make_sample_fn(G), list(metrics), opts)))}
        ratios = sticking_figure([(n, self.model(n)[0]) for n in names], seed=0, cfg=StickingConfig(),
                                 out=self.out / "f8-sticking.png")
        for row in ratios:
            results[row["model"]]["sticking_ratio"] = row["sticking_ratio"]
        return {"models": self._describe(names), "eq_samples": self.settings.eq_samples, "results": results}

    def run(self, findings: list[str]) -> dict:
        """Run the named findings and merge their numbers into OUT/study.json (after each one)."""
        for name in dict.fromkeys(n for f in findings for n in MODELS[f]):
            self.model(name)  # every model loads before the first long measurement starts
        return self.record_parts("study.json", findings, lambda f: getattr(self, f)(MODELS[f]))


MODELS = {"f1": CHOI, "f2": CHOI, "f3": CHOI, "f4": UNIFORM, "f5": PADDING, "f6": MSPIE, "eq": SHIFT_INVARIANT,
          "f8": ALIAS_FREE}
FINDINGS = tuple(MODELS)


# ---- the measurements F4 and F6 add ---------------------------------------------------------------
def uniform_constant(G, value: float):
    """A copy of constant-input generator G whose learned constant is `value` everywhere (Xu Fig. 3)."""
    if not isinstance(G.input, LearnedConstant):
        raise ValueError(f"the generator's input is {type(G.input).__name__}, not a learned constant")
    H = copy.deepcopy(G)
    with torch.no_grad():
        H.input.weight.fill_(value)
    return H


def spatial_uniformity(images: torch.Tensor, border: int) -> dict:
    """How far images are from spatially uniform: the per-image std of luma over pixels, and the
    mean squared deviation from the image mean in the `border`-px band relative to the centre."""
    g = grayscale(images.float())  # [N, H, W]
    dev = (g - g.mean(dim=(1, 2), keepdim=True)).square()
    band = torch.ones(g.shape[1:], dtype=torch.bool)
    band[border:-border, border:-border] = False
    return {"spatial_std": float(g.std(dim=(1, 2)).mean()),
            "border_msd": float(dev[:, band].mean()), "centre_msd": float(dev[:, ~band].mean())}


def canvas_mode(cfg) -> str:
    """How a model trained with MS-PIE renders larger canvases: 'expand' or 'interp' (zoom)."""
    ms = cfg.train.multiscale
    return ms.grid if ms.sizes else "interp"


# ---- figures ---------------------------------------------------------------------------------
def _plot_shift_curves(curves: dict, stride: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=120, sharey=True)
    for ax, axis in zip(axes, ("x", "y")):
        for name, r in curves.items():
            ax.plot(r["shifts"], r["curves"][axis], marker=".", ms=3, label=f"{name} ({r['mean']:.3f})")
        s = next(iter(stride.values()))
        for k in range(0, int(max(r["shifts"])) + 1, s):
            ax.axvline(k, color="0.85", lw=0.8, zorder=0)
        ax.set_xlabel(f"circular shift along {axis} (pixels; grey: multiples of the constant's stride)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("similarity  Σmin/Σmax")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_maps(maps: dict[str, np.ndarray], vmax: float, path: Path) -> None:
    plt = pyplot()
    rows, cols = len(maps), next(iter(maps.values())).shape[0]
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 1, 1.6 * rows), dpi=120, squeeze=False)
    for r, (name, m) in enumerate(maps.items()):
        for c in range(cols):
            im = axes[r, c].imshow(m[c], cmap="magma", vmin=0, vmax=vmax)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8, label="std of luma")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _plot_lines(results: dict[str, dict[str, float]], xlabel: str, ylabel: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    for name, r in results.items():
        ax.plot(list(r), list(r.values()), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
