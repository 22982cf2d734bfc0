"""`posgen cips`: what a pixel-independent generator can do that a convolutional one cannot, measured
on the digits and panorama CIPS models (docs/cips.md). One function per part, each writing its
figure(s) to OUT and returning the numbers behind them.

    fid        FID / SWD of CIPS, CIPS-NE and MS-PE StyleGAN2 on their training canvas   (Tab. 2-3)
    superres   rendering a denser grid vs Lanczos upsampling of the training-size render  (Fig. 9)
    foveated   Gaussian point sets at 5/25/50/100 % of the pixels, the rest interpolated (Fig. 8)
    panorama   360-degree strips of a cylindrical model and the seam at 0 = 360 degrees   (Sec. 4.8)
    blend      per-pixel style blending of two panoramas by a mask                       (Fig. 11c)
    ablate     Fourier features or coordinate embeddings zeroed at inference               (Fig. 6)
    encodings  spectra (Fig. 4) and principal components (Fig. 5) of the two encodings
    spectra    azimuthal image power spectra: real, CIPS, MS-PE StyleGAN2                  (Fig. 7)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from posgen.apps._runner import FigureRun
from posgen.data import DataConfig
from posgen.grid import Grid
from posgen.metrics.equivariance import lanczos_sample, source_positions
from posgen.metrics.evaluate import EvalOptions, evaluate, real_dataset
from posgen.metrics.spectrum import power_spectra, spectrum
from posgen.pixelwise import render_foveated, render_style_blend
from posgen.sampling import SampleFn, make_sample_fn, render_seeds, seed_latents
from posgen.viz import pyplot, save_panels

PARTS = ("fid", "superres", "foveated", "panorama", "blend", "ablate", "encodings", "spectra")
FRACTIONS = (0.05, 0.25, 0.5, 1.0)
FACTORS = (2, 4)
SEEDS = list(range(4))


@dataclass
class CIPSSettings:
    model: str = "digits-cips"          # planar CIPS on the biased digits
    ne_model: str = "digits-cips-ne"    # its no-embedding ablation (Tab. 3 "NE")
    conv_model: str = "digits-mspe"     # a convolutional generator on the same data, for comparison
    panorama: str = "panorama-cips"     # a cylindrical CIPS (model.circumference > 0)
    fid_samples: int = 10000            # generated images per FID / SWD at 1x
    superres_samples: int = 2000        # generated images per FID / SWD at 2x and 4x
    metric_samples: int = 256           # latents per seam / foveation / ablation measurement
    progress: bool = True


def ws_of(G, seeds: list[int]) -> torch.Tensor:
    """[len(seeds), num_ws, w_dim]: each seed's w broadcast to every layer (no truncation)."""
    w = G.mapping(seed_latents(seeds, G.cfg.z_dim).to(next(G.parameters()).device))
    return w.unsqueeze(1).expand(-1, G.num_ws, -1)


def lanczos_upsample(images: torch.Tensor, base: Grid, target: Grid) -> torch.Tensor:
    """Images rendered on `base` resampled (Lanczos-3) at the pixels of `target` (e.g. base.zoom(4))."""
    src_y, src_x = source_positions(base, target)
    return lanczos_sample(images, src_y, src_x)[0].clamp(-1, 1)


def scaled_digits(data: DataConfig, factor: int) -> DataConfig:
    """The biased digits drawn natively at `factor` times the canvas (glyphs upsampled from their
    8x8 originals straight to the larger region): real data prepared at that size."""
    d = data.digits
    digits = replace(d, canvas=tuple(c * factor for c in d.canvas), region=tuple(r * factor for r in d.region),
                     jitter=d.jitter * factor)
    return replace(data, digits=digits)


def seam_errors(strips: torch.Tensor, local: int = 3) -> dict:
    """strips [N, C, H, P]: one lap around a cylinder. Mean squared difference across the seam
    (column P-1 to column 0) against that between neighbouring columns elsewhere: all P - 1 interior
    pairs (mean, 95th percentile, the seam's rank among them) and the `local` pairs on either side
    of the seam, which see the same content statistics (models place content at preferred angles)."""
    x = strips.double()
    pairs = (x.roll(-1, -1) - x).square().mean(dim=(0, 1, 2))  # pair (j, j+1 mod P); the last one is the seam
    seam, interior = pairs[-1], pairs[:-1]
    beside = torch.cat([pairs[:local], pairs[-1 - local:-1]])
    return {"seam_mse": float(seam), "neighbour_mse": float(interior.mean()),
            "neighbour_mse_p95": float(interior.quantile(0.95)), "seam_rank": float((interior < seam).double().mean()),
            "ratio": float(seam / interior.mean()), "local_mse": float(beside.mean()),
            "local_ratio": float(seam / beside.mean())}


def without(G, encoding: str):
    """A copy of CIPS generator G whose `encoding` ("fourier" or "embedding") outputs zeros (Fig. 6)."""
    H = copy.deepcopy(G)
    module = getattr(H, encoding)
    if module is None:
        raise ValueError(f"the model has no {encoding} encoding to zero")
    with torch.no_grad():
        for p in module.parameters():  # sin(0 * x + 0) = 0; a zero lattice interpolates to 0
            p.zero_()
    return H


def whole_canvas(G) -> Grid:
    """The canvas a CIPS model was trained to cover: its training grid, or the whole strip of a cylinder."""
    return G.panorama_grid() if G.cfg.circumference else G.default_grid()


def encoding_maps(G, grid: Grid) -> dict[str, torch.Tensor]:
    """Each encoding of G on `grid`: name -> [C, H, W]."""
    coords = grid.coords()
    return {name: enc(coords)[0].detach() for name, enc in (("fourier", G.fourier), ("embedding", G.embedding))
            if enc is not None}


def mean_spectrum(maps: torch.Tensor) -> torch.Tensor:
    """[C, H, W] -> mean power |FFT2|^2 over channels (each channel's mean removed), centred [H, W]."""
    x = maps.double() - maps.double().mean(dim=(1, 2), keepdim=True)
    return torch.fft.fftshift(torch.fft.fft2(x).abs().square().mean(0))


def high_frequency_share(power: torch.Tensor) -> float:
    """Share of the (centred) power beyond half the Nyquist frequency along either axis."""
    h, w = power.shape
    fy = (torch.arange(h) - h // 2).abs()[:, None] / (h / 2)
    fx = (torch.arange(w) - w // 2).abs()[None, :] / (w / 2)
    return float(power[(fy > 0.5) | (fx > 0.5)].sum() / power.sum())


def principal_components(maps: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, list[float]]:
    """[C, H, W] -> the first k principal components of the per-pixel vectors as [k, H, W], each
    scaled to [-1, 1], and the share of variance each explains."""
    c, h, w = maps.shape
    x = maps.double().flatten(1).T  # [H*W, C]
    x = x - x.mean(0)
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    pcs = (x @ v[:k].T).T.reshape(k, h, w)
    pcs = pcs / pcs.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    var = s.square()
    return pcs.float(), (var[:k] / var.sum()).tolist()


class CIPSFigures(FigureRun):
    def __init__(self, out: str | Path, settings: CIPSSettings | None = None) -> None:
        super().__init__(out, settings or CIPSSettings())

    def _metrics(self, sample_fn: SampleFn, grid: Grid, data: DataConfig, num: int) -> dict:
        opts = EvalOptions(grid=grid, num_samples=num, feature_extractor="digits", progress=self.settings.progress)
        r = evaluate(sample_fn, ["fid", "swd"], opts, data=data, training_size=grid.size)
        return {"fid": r["fid"]["fid"], "swd_x1e3": r["swd"]["swd"]}  # the metric reports SWD x 10^3

    def _describe(self, *names: str) -> dict:
        return {n: {"kimg": self.model(n)[2].get("kimg")} for n in names}

    # ---- parts ----------------------------------------------------------------------------------
    def fid(self) -> dict:
        s = self.settings
        names = (s.model, s.ne_model, s.conv_model)
        results = {}
        for name in names:
            G, cfg, _ = self.model(name)
            results[name] = self._metrics(make_sample_fn(G), G.default_grid(), cfg.data, s.fid_samples)
        return {"models": self._describe(*names), "samples": s.fid_samples, "results": results}

    def superres(self) -> dict:
        s = self.settings
        G, cfg, _ = self.model(s.model)
        base = G.default_grid()
        base_fn = make_sample_fn(G)
        results, rows = {}, {"training-size render, nearest": [], "Lanczos-3 upsampling": [], "CIPS on the denser grid": [],
                             "real digits drawn at that size": []}
        top, left, rh, rw = cfg.data.digits.region
        for f in FACTORS:
            dense = base.zoom(f)
            data = scaled_digits(cfg.data, f)

            def lanczos_fn(n: int, seed: int, grid: Grid | None = None, f=f) -> torch.Tensor:
                return lanczos_upsample(base_fn(n, seed, None), base, base.zoom(f))

            results[f"{f}x"] = {"dense": self._metrics(base_fn, dense, data, s.superres_samples),
                                "lanczos": self._metrics(lanczos_fn, dense, data, s.superres_samples)}
            crop = (slice(None), slice(None), slice(top * f, (top + rh) * f), slice(left * f, (left + rw) * f))
            low = render_seeds(G, SEEDS)
            rows["training-size render, nearest"].append(low.repeat_interleave(f, 2).repeat_interleave(f, 3)[crop])
            rows["Lanczos-3 upsampling"].append(lanczos_upsample(low, base, dense)[crop])
            rows["CIPS on the denser grid"].append(render_seeds(G, SEEDS, dense)[crop])
            reals = real_dataset(data, dense.size, dense.size)
            rows["real digits drawn at that size"].append(
                torch.stack([reals[i] for i in range(len(SEEDS))]).float()[crop] / 127.5 - 1)
        save_panels(rows, [f"{f}x ({base.height * f}px canvas, digit corner)" for f in FACTORS], self.out / "superres.png", zoom=2)
        return {"model": self._describe(s.model), "samples": s.superres_samples, "results": results}

    def foveated(self) -> dict:
        s = self.settings
        G, cfg, _ = self.model(s.model)
        top, left, rh, rw = cfg.data.digits.region
        grid = G.default_grid().zoom(4).crop(top * 4, left * 4, rh * 4, rw * 4)  # the digit corner at 4x
        ws = ws_of(G, list(range(s.metric_samples)))
        full = G.synthesis(ws, grid).detach()
        rows: dict[str, list[torch.Tensor]] = {}
        results = {}
        for frac in FRACTIONS:
            images, index = render_foveated(G, ws, grid, frac)
            mse = float((images - full).double().square().mean())
            results[f"{round(frac * 100)}%"] = {"points": int(index.numel()),
                                                "psnr_db": 10 * np.log10(4 / mse) if mse > 0 else float("inf")}
            shown = torch.full_like(full[: len(SEEDS)], -0.6).flatten(2)
            shown[..., index] = full[: len(SEEDS)].flatten(2)[..., index]
            rows.setdefault("rendered points", []).append(shown.view_as(full[: len(SEEDS)]))
            rows.setdefault("filled by interpolation", []).append(images[: len(SEEDS)])
        columns = [f"{k} ({v['points']} px, {v['psnr_db']:.1f} dB)" for k, v in results.items()]
        cols = [torch.stack([rows[r][c] for r in rows]) for c in range(len(FRACTIONS))]
        panel = {f"seed {i}": [col[:, i] for col in cols] for i in range(len(SEEDS))}
        save_panels(panel, columns, self.out / "foveated.png", cols=1, zoom=2)
        return {"model": self._describe(s.model), "grid": list(grid.size), "sigma_px": min(grid.size) / 4,
                "psnr_against": "the full render of the same latents", "samples": s.metric_samples,
                "results": results}

    def panorama(self) -> dict:
        s = self.settings
        G, _, _ = self.model(s.panorama)
        strip = G.panorama_grid()
        P = strip.width
        ws = ws_of(G, list(range(s.metric_samples)))
        laps = G.synthesis(ws, strip.resize(strip.height, 2 * P)).detach()  # two laps: column j + P is column j
        one = laps[..., :P]
        result = {"model": self._describe(s.panorama), "circumference_px": P, "samples": s.metric_samples,
                  "seam": seam_errors(one), "period_max_abs": float((laps[..., P:] - one).abs().max())}
        plt = pyplot()
        fig, axes = plt.subplots(len(SEEDS), 1, figsize=(10, 1.25 * len(SEEDS)), dpi=120)
        for i, ax in enumerate(axes):
            ax.imshow(((laps[i].permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy(), interpolation="nearest")
            ax.axvline(P - 0.5, color="w", lw=0.8, ls=":")
            ax.set_xticks([0, P // 2, P, 3 * P // 2], ["0°", "180°", "360° = 0°", "180°"], fontsize=7)
            ax.set_yticks([])
        fig.suptitle("two laps of 360-degree strips; the dotted line is the seam", fontsize=9)
        fig.tight_layout()
        fig.savefig(self.out / "panorama.png")
        plt.close(fig)
        return result

    def blend(self) -> dict:
        s = self.settings
        G, _, _ = self.model(s.panorama)
        strip = G.panorama_grid()
        ws = ws_of(G, [0, 1])
        P = strip.width
        # the centre third keeps style a, the outer thirds style b, with linear ramps between
        d = (torch.arange(P, dtype=torch.float64) - (P - 1) / 2).abs() / P  # 0 at the centre, 0.5 at the ends
        mask = ((d - 1 / 6) / (1 / 6)).clamp(0, 1).expand(strip.height, P)
        blended = render_style_blend(G, ws[:1], ws[1:], mask, strip)
        a, b = G.synthesis(ws, strip).detach().split(1)
        centre, outer = mask[0] == 0, mask[0] == 1
        result = {"model": self._describe(s.panorama), "levels": 256,
                  "max_abs_centre_vs_a": float((blended - a)[..., centre].abs().max()),
                  "max_abs_outer_vs_b": float((blended - b)[..., outer].abs().max())}
        save_panels({"style a": [a], "style b": [b], "blend (a in the centre)": [blended]},
                    ["360-degree strip"], self.out / "blend.png", zoom=3)
        return result

    def ablate(self) -> dict:
        s = self.settings
        results, panels = {}, {}
        for role, name in (("planar", s.model), ("panorama", s.panorama)):
            G, _, _ = self.model(name)
            grid = whole_canvas(G)
            ws = ws_of(G, list(range(s.metric_samples)))
            full = G.synthesis(ws, grid).detach()
            row, results[name] = [full[: len(SEEDS)]], {}
            for enc in ("fourier", "embedding"):
                out = without(G, enc).synthesis(ws, grid).detach()
                results[name][f"no_{enc}_mse"] = float((out - full).double().square().mean())
                row.append(out[: len(SEEDS)])
            panels[role] = (name, row)
        for role, (name, row) in panels.items():
            cols = 1 if row[0].shape[-1] > row[0].shape[-2] else len(SEEDS)
            save_panels({name: row}, ["full", "Fourier features zeroed", "embeddings zeroed"],
                        self.out / f"ablate-{role}.png", cols=cols, zoom=3)
        return {"models": self._describe(s.model, s.panorama), "samples": s.metric_samples, "results": results}

    def encodings(self) -> dict:
        s = self.settings
        plt = pyplot()
        results = {}
        for role, name in (("planar", s.model), ("panorama", s.panorama)):
            G, _, _ = self.model(name)
            grid = whole_canvas(G)
            maps = encoding_maps(G, grid)
            fig, axes = plt.subplots(2, len(maps), figsize=(4.2 * len(maps), 4.6 if grid.width == grid.height else 3),
                                     dpi=120, squeeze=False)
            results[name] = {}
            for c, (enc, m) in enumerate(maps.items()):
                power = mean_spectrum(m)
                pcs, var = principal_components(m)
                results[name][enc] = {"high_frequency_share": high_frequency_share(power),
                                      "pca_variance_share": var}
                axes[0, c].imshow(torch.log10(power + 1e-12).numpy(), cmap="magma")
                axes[0, c].set_title(f"{enc}: log power spectrum", fontsize=8)
                axes[1, c].imshow(((pcs.permute(1, 2, 0) + 1) / 2).numpy(), interpolation="nearest")
                axes[1, c].set_title(f"{enc}: PCs 1-3 as RGB ({100 * sum(var):.0f}% var.)", fontsize=8)
                for ax in axes[:, c]:
                    ax.set_xticks([])
                    ax.set_yticks([])
            fig.tight_layout()
            fig.savefig(self.out / f"encodings-{role}.png")
            plt.close(fig)
        return {"models": self._describe(s.model, s.panorama), "results": results}

    def spectra(self) -> dict:
        s = self.settings
        G, cfg, _ = self.model(s.model)
        grid = G.default_grid()
        reals = real_dataset(cfg.data, grid.size, grid.size)
        n = min(s.superres_samples, len(reals))
        real = power_spectra(torch.stack([reals[i] for i in range(n)]).float() / 127.5 - 1)
        results, curves = {}, {}
        for name in (s.model, s.ne_model, s.conv_model):
            H = self.model(name)[0]
            fake = power_spectra(make_sample_fn(H)(n, 0, grid))
            r = spectrum(fake, real)
            results[name] = {k: r[k] for k in ("spectral_distance_db", "spectrum_high_freq_db")}
            curves[name] = fake.mean(0)
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
        freqs = np.arange(real.shape[1]) / (2 * (real.shape[1] - 1))
        ax.semilogy(freqs[1:], real.mean(0)[1:], "k", lw=2, label="real")
        for name, c in curves.items():
            ax.semilogy(freqs[1:], c[1:], label=f"{name} ({results[name]['spectral_distance_db']:.1f} dB)")
        ax.set_xlabel("spatial frequency (cycles / pixel)")
        ax.set_ylabel("azimuthal mean power")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(self.out / "spectra.png")
        plt.close(fig)
        return {"models": self._describe(s.model, s.ne_model, s.conv_model), "samples": n, "results": results}

    def run(self, parts: list[str]) -> dict:
        """Run the named parts and merge their numbers into OUT/cips.json (after each one)."""
        s = self.settings
        for name in (s.model, s.ne_model, s.conv_model, s.panorama):
            self.model(name)  # every model loads before the first long measurement starts
        for option, name in (("--model", s.model), ("--ne-model", s.ne_model), ("--panorama", s.panorama)):
            if self.model(name)[0].family != "cips":
                raise ValueError(f"{option} {name} is a {self.model(name)[0].family} model: it needs a cips one")
        if not getattr(self.model(s.panorama)[0].cfg, "circumference", 0):
            raise ValueError(f"{s.panorama} is not a cylindrical CIPS model (model.circumference is 0)")
        with torch.no_grad():
            return self.record_parts("cips.json", parts, lambda part: getattr(self, part)())


__all__ = ["CIPSFigures", "CIPSSettings", "PARTS", "encoding_maps", "high_frequency_share",
           "lanczos_upsample", "mean_spectrum", "principal_components", "scaled_digits", "seam_errors", "without"]
