"""Stochastic reconstruction with a DDPM (Ho et al. Sec. 4.3; Choi et al. Sec. 4.5, Fig. 9, App. E).

An image x_0 is encoded to step t with the forward process, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
(Ho Eq. 4), and decoded with the learned reverse process from t down to 0. Both halves are stochastic;
the larger t, the less of the input survives. Fed digits at a position the model never saw (the
biased digits live in the top-left), a spatially biased DDPM drags them back to its corner once t is
large enough (Choi: from t ~ 500-600), a model with MS-PE keeps them in place.

`reconstruct` does one (images, t, grid); `reconstruction_study` sweeps t for several models and
measures where the ink ends up (`posgen.metrics.coverage.placement`): its share inside the input's
region, its share in the training region, the centre of mass and the ink-mask IoU with the input.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from posgen.data.digits import BiasedDigitsConfig, make_biased_digits
from posgen.grid import Grid
from posgen.metrics.coverage import ink, placement
from posgen.models.base import require
from posgen.viz import pyplot, save_panels

TIMES = (100, 200, 300, 400, 500, 600, 700, 800, 900)


@torch.no_grad()
def reconstruct(G, images: torch.Tensor, t: int, grid: Grid | None = None, *, stride: int = 1,
                seed: int = 0) -> torch.Tensor:
    """Encode images [N, C, H, W] in [-1, 1] to Ho's step t (array index t - 1) and decode with G's
    reverse process (ancestral DDPM; every `stride`-th step, respaced, when stride > 1) on `grid`
    (default: a lattice of the images' size at the training spacing). Image i of the batch draws its
    encoding and decoding noise from RNG (seed, i): the same call gives the same reconstructions."""
    T = G.diffusion.num_timesteps
    if not 1 <= t <= T:
        raise ValueError(f"t must be in 1..{T}, got {t}")
    grid = grid or Grid(images.shape[-2], images.shape[-1])
    device = next(G.parameters()).device
    x0 = images.to(device, torch.float32)
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(len(x0))]
    noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(device)
    index = torch.full((len(x0),), t - 1, dtype=torch.long, device=device)
    xt = G.diffusion.q_sample(x0, index, noise)  # Ho Eq. 4
    steps = math.ceil(t / stride)
    return G.diffusion.sample(G.eps_fn(grid, device), xt, start=t - 1, steps=steps, sampler="ddpm", generator=gens)


def placement_stats(out: torch.Tensor, inputs: torch.Tensor, region: tuple[int, int, int, int],
                    training_region: tuple[int, int, int, int]) -> dict[str, float]:
    """Where the ink of `out` lies relative to the inputs: means over the images of its share in the
    input's region and in the training region, its centre of mass (y, x in pixels) and the IoU of the
    ink masks (ink > 0.5) of output and input."""
    h, w = out.shape[-2:]
    at_input = placement(out, region)
    at_train = placement(out, training_region)
    a, b = ink(out) > 0.5, ink(inputs) > 0.5
    iou = (a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).clamp_min(1).float()
    has_ink = at_input["mass"] > 0
    return {"in_input_region": at_input["region"][has_ink].mean().item() if has_ink.any() else 0.0,
            "in_training_region": at_train["region"][has_ink].mean().item() if has_ink.any() else 0.0,
            "center_y": at_input["center"][:, 0].mean().item() * h, "center_x": at_input["center"][:, 1].mean().item() * w,
            "iou": iou.mean().item(), "empty": (~has_ink).float().mean().item()}


@dataclass
class ReconstructionSettings:
    times: tuple[int, ...] = TIMES
    num_images: int = 32          # digits measured per t
    shown: int = 6                # digits shown per cell of the figure
    stride: int = 1               # reverse-process stride (1: every step, as Ho / Choi)
    region: tuple[int, int, int, int] = (16, 16, 16, 16)  # where the inputs sit (default bottom-right: unseen)
    canvas: tuple[int, int] | None = None  # None: the training canvas; larger: an "expand" grid
    shift: tuple[float, float] | None = None  # render on the training grid shifted by (dy, dx) (MS-PE models)
    seed: int = 0
    digits: dict = field(default_factory=lambda: dict(colors=None, jitter=2, seed=123))


def input_digits(settings: ReconstructionSettings, training_canvas: tuple[int, int]) -> torch.Tensor:
    """The first num_images biased digits pasted at settings.region of the canvas, in [-1, 1]."""
    canvas = settings.canvas or training_canvas
    cfg = BiasedDigitsConfig(canvas=canvas, region=settings.region, **settings.digits)
    images, _ = make_biased_digits(cfg)
    picks = torch.randperm(len(images), generator=torch.Generator().manual_seed(settings.seed))[:settings.num_images]
    return images[picks].float() / 127.5 - 1


def reconstruction_study(models: dict[str, object], out: str | Path, settings: ReconstructionSettings,
                         training_region: tuple[int, int, int, int] = (0, 0, 16, 16), progress: bool = True) -> dict:
    """Reconstruct the same inputs with every model (name -> DDPM generator) at every t.

    Each model's numbers go to OUT/reconstruction-NAME.json (rewritten after each t) and its shown
    images to OUT/reconstruction-NAME.safetensors; then OUT/reconstruction.png (Choi Fig. 9 / App. E),
    OUT/reconstruction-placement.png (curves over t) and OUT/reconstruction.json are drawn from every
    model in OUT measured with the same settings, so models can be run by separate processes (one
    per model, in parallel) into one figure. Returns the merged record."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(models.values()))
    inputs = input_digits(settings, first.default_grid().size)
    grid = Grid(*inputs.shape[-2:])
    if settings.shift is not None:
        for name, G in models.items():
            require(G, "shift", "--shift", name)
        grid = grid.shift(*settings.shift)
    head = {"settings": json.loads(json.dumps(asdict(settings))),
            "input": placement_stats(inputs, inputs, settings.region, training_region)}
    with tqdm(total=len(models) * len(settings.times), disable=not progress, desc="reconstruct", unit="t") as bar:
        for name, G in models.items():
            by_t, shown = {}, {"input": inputs[:settings.shown].contiguous()}
            for t in settings.times:
                rec = reconstruct(G, inputs, t, grid, stride=settings.stride, seed=settings.seed)
                by_t[str(t)] = placement_stats(rec, inputs, settings.region, training_region)
                shown[str(t)] = rec[:settings.shown].cpu().contiguous()
                (out / f"reconstruction-{name}.json").write_text(json.dumps({**head, "model": by_t}, indent=1) + "\n")
                bar.update(1)
            save_file(shown, str(out / f"reconstruction-{name}.safetensors"))
    return draw_reconstructions(out, head)


def draw_reconstructions(out: Path, head: dict) -> dict:
    """The figure, curves and merged record of every model in `out` measured with head["settings"]."""
    from safetensors.torch import load_file

    times = head["settings"]["times"]
    record, rows = {**head, "models": {}}, {}
    for path in sorted(out.glob("reconstruction-*.json")):
        name = path.stem[len("reconstruction-"):]
        part = json.loads(path.read_text())
        images = out / f"reconstruction-{name}.safetensors"
        if part.get("settings") != head["settings"] or not images.is_file():
            continue  # another protocol, or a model still running
        shown = load_file(str(images))
        rows.setdefault("input", [shown["input"]] * len(times))
        rows[name] = [shown[str(t)] for t in times]
        record["models"][name] = part["model"]
    (out / "reconstruction.json").write_text(json.dumps(record, indent=1) + "\n")
    if record["models"]:
        save_panels(rows, [f"t={t}" for t in times], out / "reconstruction.png", cols=2)
        _plot(record, out / "reconstruction-placement.png")
    return record


def _plot(record: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    keys = [("in_input_region", "ink share in the input's region"), ("in_training_region", "ink share in the training region"),
            ("iou", "ink-mask IoU with the input")]
    for ax, (key, title) in zip(axes, keys):
        for name, by_t in record["models"].items():
            ts = sorted(int(t) for t in by_t)
            ax.plot(ts, [by_t[str(t)][key] for t in ts], marker="o", label=name)
        ax.axhline(record["input"][key], color="grey", ls="--", lw=1, label="input")
        ax.set_xlabel("t (encoding step)")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
