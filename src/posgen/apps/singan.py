"""SinGAN figures and numbers: where structure appears with and without padding and with explicit
encodings (Xu et al. Fig. 1 and 7, Sec. 3.2 and 3.6).

For each model (default: the four shipped SinGANs on china.jpg):
- a figure: the training image, the reconstruction, samples at 1x, 1.5x and 2x the training width;
- region-matched single-image SWD: 7x7 patches of the samples' border band against the training
  image's border band, and of the central box against its central box (full and half resolution,
  descriptors normalised by the real region's statistics, x 10^3). Xu et al.: padded SinGAN is
  structured at the borders and unstructured in the centre;
- layout distance: RMSE of coarse block means (about 14 px blocks) between samples and the training
  image, at 1x; at 1.5x and 2x both against the training image stretched to the canvas ("interp"
  reading: Xu Fig. 7b keeps positions by stretching) and of the left part against the training image
  ("expand" reading: the canvas continues to the right); at 1x also over the outer ring of blocks and
  the blocks inside it; references: a flat image of the mean colour (no layout) and the mirrored
  training image (the right content in the wrong places);
- diversity: the per-pixel standard deviation across samples, averaged (0: every sample the same).

`posgen singan --out docs/singan [--models a,b] [--samples N] [--scale K]` writes singan.json and
singan_samples.png to OUT.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from posgen.apps._runner import FigureRun
from posgen.grid import Grid
from posgen.metrics.swd import PATCH, sliced_wasserstein
from posgen.training.singan import training_image
from posgen.viz import save_panels

MODELS = ("singan-pad", "singan-nopad", "singan-csg", "singan-spe")
WIDTHS = (1.0, 1.5, 2.0)


@dataclass
class SinGANStudySettings:
    models: tuple[str, ...] = MODELS
    samples: int = 24
    border: int = 12          # width of the border band in training pixels
    patches: int = 128        # random patches per sample and region
    block: int = 14           # layout blocks of about this many pixels
    seed: int = 0
    scale: int | None = None  # measure at this scale of the pyramid (0: coarsest; None: the finest), e.g. to
    #                           compare runs that have not reached the finest scale; sizes shrink with it


def region_masks(h: int, w: int, border: int) -> dict[str, torch.Tensor]:
    """Boolean [h - 6, w - 6] masks of the 7x7 patch positions whose centre lies in the border band (within
    `border` pixels of an edge) / in the central box (the middle half of each side)."""
    ys, xs = torch.meshgrid(torch.arange(h - PATCH + 1), torch.arange(w - PATCH + 1), indexing="ij")
    cy, cx = ys + PATCH // 2, xs + PATCH // 2
    band = (cy < border) | (cx < border) | (cy >= h - border) | (cx >= w - border)
    centre = (cy >= h // 4) & (cx >= w // 4) & (cy < h - h // 4) & (cx < w - w // 4)
    return {"border": band, "centre": centre}


def patches(images: torch.Tensor, mask: torch.Tensor, per_image: int | None, gen: torch.Generator) -> torch.Tensor:
    """7x7 patches [P, C * 49] at the positions of `mask` (all, or `per_image` random ones per image)."""
    p = images.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # [N, C, h-6, w-6, 7, 7]
    p = p.permute(0, 2, 3, 1, 4, 5)[:, mask]  # [N, M, C, 7, 7]
    if per_image is not None:
        p = p[:, torch.randint(p.shape[1], (per_image,), generator=gen)]
    return p.reshape(-1, p[0, 0].numel())


def region_swd(fakes: torch.Tensor, real: torch.Tensor, border: int, per_image: int, seed: int) -> dict[str, float]:
    """SWD x 10^3 per region (border band, central box), averaged over full and half resolution."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"border": [], "centre": []}
    for level in range(2):
        f, r = (F.avg_pool2d(fakes, 2), F.avg_pool2d(real, 2)) if level else (fakes, real)
        b = border // 2 if level else border
        for name, mask in region_masks(*r.shape[-2:], b).items():
            if not mask.any():
                raise ValueError(f"a {r.shape[-2]}x{r.shape[-1]} image has no 7x7 patch in its {name} region")
            a, ref = patches(f, mask, per_image, gen), patches(r, mask, None, gen)
            mean, std = ref.mean(0), ref.std(0).clamp_min(1e-3)  # both sets in the real region's units
            n = min(len(a), len(ref))
            a = a[torch.randperm(len(a), generator=gen)[:n]]
            ref = ref[torch.randperm(len(ref), generator=gen)[:n]]
            out[name].append(1e3 * sliced_wasserstein((a - mean) / std, (ref - mean) / std, seed=seed))
    return {f"swd_{k}": sum(v) / len(v) for k, v in out.items()}


def layout_distance(images: torch.Tensor, reference: torch.Tensor, block: int, blocks: str = "all") -> float:
    """RMSE of block means between images [N, 3, h, w] and one reference [1, 3, h, w] of the same size,
    over all blocks, the outer ring of blocks ("border") or the blocks inside it ("centre")."""
    h, w = reference.shape[-2:]
    size = (max(3, round(h / block)), max(3, round(w / block)))
    a, b = F.adaptive_avg_pool2d(images, size), F.adaptive_avg_pool2d(reference, size)
    d = ((a - b) ** 2).mean(dim=1)  # [N, bh, bw]
    ring = torch.ones(size, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    keep = {"all": torch.ones_like(ring), "border": ring, "centre": ~ring}[blocks]
    return float(d[:, keep].mean(dim=1).sqrt().mean())


def stretch(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)


@torch.no_grad()
def measure(G, real: torch.Tensor, s: SinGANStudySettings) -> tuple[dict, dict]:
    """Numbers of one model, and its images per width (for the figure)."""
    H, W = real.shape[-2:]
    k = G.num_scales - 1 if s.scale is None else s.scale
    rho = G.densities[k]
    real = stretch(real, G.cfg.sizes[k]) if k < G.num_scales - 1 else real
    h, w = real.shape[-2:]
    block, border = max(2, round(s.block * rho)), max(2 * (PATCH // 2 + 1), round(s.border * rho))  # half res too
    seeds = list(range(s.seed, s.seed + s.samples))

    def render(noise, grid: Grid) -> torch.Tensor:  # scale k's output for a grid of training-size pixels
        return G.synthesize(noise, grid, k).clamp(-1, 1)

    rec = render(G.reconstruction_noise(None, k), G.default_grid())
    out = {"image_size": [h, w], "scale": k, "scales": G.num_scales,
           "noise_amp": [round(float(a), 5) for a in G.noise_amp],
           "reconstruction_rmse": float(((rec - real) ** 2).mean().sqrt())}
    images = {}
    for factor in WIDTHS:
        grid = Grid(H, round(W * factor))
        fakes = torch.cat([render(G.noise_pyramid(seeds[i:i + 8], grid, k), grid) for i in range(0, len(seeds), 8)])
        width = fakes.shape[-1]
        images[factor] = fakes
        key = f"{factor:g}x"
        row = {"layout_stretched": layout_distance(fakes, stretch(real, (h, width)), block),
               "diversity": float(fakes.std(0).mean())}
        if factor == 1.0:
            row.update(region_swd(fakes, real, border, s.patches, s.seed))
            row.update({f"layout_{b}": layout_distance(fakes, real, block, b) for b in ("border", "centre")})
        else:
            row["layout_left"] = layout_distance(fakes[..., :w], real, block)
        out[key] = row
    flat = real.mean(dim=(2, 3), keepdim=True).expand_as(real)
    out["references"] = {f"{name}_{b}": layout_distance(ref, real, block, b) for b in ("all", "border", "centre")
                         for name, ref in (("flat_mean_colour", flat), ("mirrored_image", real.flip(-1)))}
    return out, {"rec": rec, **images}


def run(out: str, settings: SinGANStudySettings = SinGANStudySettings()) -> dict:
    fig = FigureRun(out, settings)
    rows: dict[str, list[torch.Tensor]] = {}

    def one(name: str) -> dict:
        G, cfg, state = fig.model(name)
        real = training_image(cfg)
        numbers, images = measure(G, real, settings)
        numbers["iterations"] = state.get("step")
        real = stretch(real, tuple(images["rec"].shape[-2:]))  # at the measured scale
        rows[name] = [torch.cat([real, images["rec"]]), images[1.0][:3], images[1.5][:2], images[2.0][:2]]
        return numbers

    record = fig.record_parts("singan.json", list(settings.models), one)
    save_panels(rows, ["training image | reconstruction", "1x width", "1.5x width", "2x width"],
                fig.out / "singan_samples.png", cols=1, zoom=2)
    return record
