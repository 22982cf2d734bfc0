"""GAN inversion ("projection"): find the latent that makes a generator draw a given image.

Follows the projector of StyleGAN2 (Karras et al. 2020, App. D), as Choi et al. Sec. 4.1 use it
to show that a spatially unbiased generator can still explain a shifted or zoomed image:

- optimise w (one vector for every layer, or one per layer: "w+"), starting from the mean w
  (estimated from `w_avg_samples` mapped z), with Adam and a learning rate that ramps up over the
  first 5 % of the steps and down (cosine) over the last 25 %;
- during the first 75 % of the steps w is perturbed by Gaussian noise of std
  0.05 * w_std * (1 - t / 0.75)^2 (w_std the spread of mapped w), which helps leave bad basins;
- the per-layer noise inputs are optimised too, each re-normalised to zero mean and unit variance
  after every step and regularised to stay uncorrelated: the sum, over a pyramid of 2x2 average
  poolings down to 8x8, of the squared autocorrelation at a one-pixel shift in x and in y;
- the distance is pixel MSE plus a perceptual distance that works offline: the squared L2 of
  unit-normalised features of posgen's digits network for digits models (LPIPS needs downloads),
  or of the FID Inception network when its weights are present;
- optionally the grid itself is a parameter (content translation (dy, dx) and a log-scale): an
  unbiased generator can then explain a shifted or zoomed image by moving its grid.

The generator is only asked for `synthesize(ws, grid, options)` (every `MappedGenerator`), so
any family with a mapping network can be projected into; families without one are refused.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from posgen.errors import DataError, UsageError
from posgen.grid import Grid
from posgen.models.base import Generator, MappedGenerator, RenderOptions
from posgen.ops.noise import NoiseInput

FeatureKind = Literal["auto", "digits", "inception", "none"]


@dataclass
class ProjectionConfig:
    steps: int = 300
    lr: float = 0.1                     # initial learning rate (StyleGAN2 projector)
    lr_rampup: float = 0.05             # fraction of steps of linear warm-up
    lr_rampdown: float = 0.25           # fraction of steps of cosine decay at the end
    w_plus: bool = False                # one w per layer instead of one for all
    optimize_w: bool = True             # False: keep the starting latent (fit only the grid and/or noise)
    mse_weight: float = 1.0             # pixel MSE on images in [-1, 1]
    feature_weight: float = 0.1         # perceptual distance (squared L2 of unit-normalised features)
    features: FeatureKind = "auto"      # auto: digits for digits models, inception if its weights exist, else none
    noise_weight: float = 1e5           # noise-map regularisation (StyleGAN2: 1e5)
    optimize_noise: bool = True         # optimise the noise inputs (families with noise only)
    initial_noise_factor: float = 0.05  # w perturbation, times w_std
    noise_ramp: float = 0.75            # fraction of steps over which the perturbation decays to 0
    optimize_grid: bool = False         # translation and scale of the grid as parameters
    grid_search: bool = True            # with optimize_grid: start each target from the best of a coarse
                                        # search over shifts (every 4 px), zoom 1 or 2, plain or rolled grids
    grid_lr: float = 0.05               # learning rate of the grid parameters, pixels / log-scale per step
    w_avg_samples: int = 10000
    seed: int = 0
    trace_every: int = 10               # record a trace frame every this many steps (0: none)

    def validate(self) -> None:
        if self.steps < 1:
            raise UsageError(f"projection steps must be positive, got {self.steps}")
        if not (self.lr > 0 and self.grid_lr > 0):
            raise UsageError("projection learning rates must be positive")
        if min(self.mse_weight, self.feature_weight, self.noise_weight) < 0:
            raise UsageError("projection loss weights must be >= 0")
        if self.features not in ("auto", "digits", "inception", "none"):
            raise UsageError(f"--features must be auto, digits, inception or none, got {self.features!r}")
        if self.w_avg_samples < 2:
            raise UsageError("w_avg_samples must be at least 2")


# ------------------------------------------------------------------------------ grid parameters

def param_grid(height: int, width: int, shift: torch.Tensor, log_scale: torch.Tensor,
               period: tuple[float, float] | None = None) -> Grid:
    """A `Grid` whose affine map is a differentiable function of content shift (dy, dx) and log-scale.

    Scale s = exp(log_scale) is the frame spacing of one lattice step (s = 1/zoom); as in
    `Grid.zoom`, the outer corner of the top-left pixel stays put, then the content moves by
    (dy, dx): x = s * j + (s - 1) / 2 - dx, y = s * i + (s - 1) / 2 - dy.
    """
    s = log_scale.double().exp()
    off = (s - 1) / 2
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    dy, dx = shift.double().unbind()
    affine = torch.stack([torch.stack([s, zero, off - dx]), torch.stack([zero, s, off - dy]),
                          torch.stack([zero, zero, one])])
    return Grid(height, width, affine, period)


# ------------------------------------------------------------------------------ noise inputs

class NoiseMaps:
    """Optimisable noise maps for every `NoiseInput` of a generator, added by forward hooks while
    the generator renders with noise_mode "off" (the model files stay untouched).

    Maps are created on the first render (their lattice depends on the grid): [N, 1, h, w] each.
    """

    def __init__(self, G: Generator, batch: int, seed: int = 0) -> None:
        self.modules = [(name, m) for name, m in G.named_modules() if isinstance(m, NoiseInput)]
        self.batch = batch
        self.maps: dict[str, torch.Tensor] = {}
        self._gen = torch.Generator().manual_seed(seed)

    def __bool__(self) -> bool:
        return bool(self.modules)

    @contextmanager
    def active(self, index: int | None = None) -> Iterator[None]:
        """Add the maps while rendering: all N, or only target `index` (a batch of one)."""
        def hook_for(name: str):
            def hook(module: NoiseInput, args, output: torch.Tensor) -> torch.Tensor:
                x = args[0]
                if name not in self.maps:
                    m = torch.randn(self.batch, 1, *x.shape[2:], generator=self._gen).to(x)
                    self.maps[name] = m.requires_grad_(True)
                m = self.maps[name] if index is None else self.maps[name][index:index + 1]
                return output + m * module.strength
            return hook

        handles = [m.register_forward_hook(hook_for(name)) for name, m in self.modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def regularization(self) -> torch.Tensor:
        """Sum over maps and a 2x2-pooling pyramid (down to 8x8) of the squared one-pixel
        autocorrelations in x and y (StyleGAN2 projector)."""
        reg = torch.zeros([])
        for m in self.maps.values():
            while True:
                reg = reg + (m * torch.roll(m, 1, dims=3)).mean().square() + (m * torch.roll(m, 1, dims=2)).mean().square()
                if min(m.shape[2:]) <= 8:
                    break
                m = F.avg_pool2d(m, 2)
        return reg

    @torch.no_grad()
    def normalize(self) -> None:
        for m in self.maps.values():
            m -= m.mean(dim=(1, 2, 3), keepdim=True)
            m *= m.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()


# ------------------------------------------------------------------------------ distances

class Distance:
    """Per-image distance [N]: mse_weight * pixel MSE + feature_weight * ||f(x)/|f(x)| - f(y)/|f(y)|||^2."""

    def __init__(self, target: torch.Tensor, features: Callable[[torch.Tensor], torch.Tensor] | None,
                 mse_weight: float, feature_weight: float) -> None:
        self.target = target  # [N, C, H, W] in [-1, 1]
        self.features = features if feature_weight > 0 else None
        self.mse_weight, self.feature_weight = mse_weight, feature_weight
        with torch.no_grad():
            self.target_features = None if self.features is None else _unit(self.features(target))

    def parts(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"mse": (images - self.target).square().mean(dim=(1, 2, 3))}
        if self.features is not None:
            out["feature"] = (_unit(self.features(images)) - self.target_features).square().sum(dim=1)
        return out

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = self.parts(images)
        total = self.mse_weight * parts["mse"]
        if "feature" in parts:
            total = total + self.feature_weight * parts["feature"]
        return total, parts


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.norm(dim=1, keepdim=True) + 1e-8)


def feature_network(kind: FeatureKind, data_source: str | None, device: str | torch.device = "cpu"):
    """(name, features(images [N, C, H, W] in [-1, 1]) -> [N, D], differentiable) or (\"none\", None)."""
    if kind == "auto":
        if data_source == "digits":
            kind = "digits"
        else:
            from posgen.errors import MetricError
            from posgen.metrics.inception import resolve_weights

            try:
                resolve_weights(verify=False)
                kind = "inception"
            except MetricError:  # no weights in this install: pixels only
                kind = "none"
    if kind == "none":
        return "none", None
    if kind == "digits":
        from posgen.metrics.digits_features import load_digits_extractor

        net = load_digits_extractor(device)
        return "digits", lambda x: net.features_of(net.preprocess(x))
    from posgen.metrics.inception import INPUT_SIZE, load_inception

    net = load_inception(device).requires_grad_(False)

    def inception(x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return net.features(x.expand(-1, 3, -1, -1))

    return "inception", inception


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (I_max = 2, as StyleGAN3's EQ metrics)."""
    mse = (a.float() - b.float()).square().mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return 10 * torch.log10(4.0 / mse)


# ------------------------------------------------------------------------------ the projector

@dataclass
class Projection:
    """What `project` found, per target image (index n of the batch)."""

    ws: torch.Tensor                 # [N, num_ws, w_dim]
    images: torch.Tensor             # [N, C, H, W] reconstructions (noise maps included)
    psnr: torch.Tensor               # [N] dB
    feature_distance: torch.Tensor | None  # [N] or None without a feature network
    noise: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [N, 1, h, w]
    grids: list[Grid] = field(default_factory=list)  # per target: the grid rendered on
    history: list[dict] = field(default_factory=list)  # per step: loss parts (means over the batch)


@torch.no_grad()
def w_statistics(G: MappedGenerator, samples: int, seed: int = 0) -> tuple[torch.Tensor, float]:
    """(w_avg [w_dim], w_std): mean of mapped w over `samples` z and the root mean squared distance to it."""
    device = next(G.parameters()).device
    z = torch.randn(samples, G.cfg.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    w = torch.cat([G.mapping(z[i:i + 4096]) for i in range(0, samples, 4096)])  # [S, w_dim]
    w_avg = w.mean(dim=0)
    return w_avg, float((w - w_avg).square().sum(dim=1).mean().sqrt())


def _lr_at(t: float, cfg: ProjectionConfig) -> float:
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return cfg.lr * ramp * min(1.0, t / cfg.lr_rampup)


def require_mapping(G: Generator, model: str | None = None) -> None:
    """Projection, editing and mixing need a generator with a mapping network (w space)."""
    from posgen.models.base import require

    require(G, "truncation", "projection and editing (a w space)", model)
    if not isinstance(G, MappedGenerator):  # every family with "truncation" is one; be explicit anyway
        raise UsageError(f"{type(G).__name__} has no mapping network to project into")


def project(G: MappedGenerator, target: torch.Tensor, cfg: ProjectionConfig = ProjectionConfig(), *,
            grid: Grid | None = None, data_source: str | None = None, init_ws: torch.Tensor | None = None,
            on_step: Callable[[int, dict, torch.Tensor], None] | None = None, progress: bool = False,
            model: str | None = None) -> Projection:
    """Project `target` [N, C, H, W] (in [-1, 1]) into G; see the module docstring.

    `grid`: the grid to render on (default the training canvas; with `cfg.optimize_grid` the
    starting point: its translation and scale are refined, one grid per target). `init_ws`
    [N, num_ws, w_dim] starts from given latents instead of the mean w. `on_step(step, losses,
    images)` is called after every step with the current renders (trace videos).
    """
    from tqdm import tqdm

    cfg.validate()
    require_mapping(G, model)
    if cfg.optimize_grid:
        from posgen.models.base import require

        require(G, "shift", "--optimize-grid", model)  # the scale too where the family renders denser grids
    device = next(G.parameters()).device
    target = target.to(device, torch.float32)
    n = target.shape[0]
    grid = grid or G.default_grid()
    if target.ndim != 4 or target.shape[1] != G.cfg.img_channels or tuple(target.shape[2:]) != grid.size:
        raise DataError(f"target images must be [N, {G.cfg.img_channels}, {grid.height}, {grid.width}] for this "
                        f"generator and canvas, got {list(target.shape)}")
    G.requires_grad_(False)
    feature_kind, features = feature_network(cfg.features, data_source, device)
    if cfg.features not in ("auto", feature_kind):
        raise UsageError(f"--features {cfg.features} is not available")
    dist = Distance(target, features, cfg.mse_weight, cfg.feature_weight)
    w_avg, w_std = w_statistics(G, cfg.w_avg_samples, cfg.seed)
    num_w = G.num_ws if cfg.w_plus else 1
    if init_ws is not None:
        start = init_ws.to(device).float() if cfg.w_plus else init_ws.to(device).float().mean(dim=1, keepdim=True)
    else:
        start = w_avg.view(1, 1, -1).expand(n, num_w, -1)
    w_opt = start.detach().clone().requires_grad_(True)  # [N, num_w, w_dim]
    noise = NoiseMaps(G, n, cfg.seed) if (cfg.optimize_noise and "noise" in G.capabilities) else None
    grids = (_GridParams(grid, n, scale="zoom" in G.capabilities, roll="roll" in G.capabilities)
             if cfg.optimize_grid else None)
    opts = RenderOptions(noise_mode="off") if "noise" in G.capabilities else RenderOptions()
    rng = torch.Generator().manual_seed(cfg.seed + 1)

    def render(ws: torch.Tensor) -> torch.Tensor:
        ws = ws.expand(-1, G.num_ws, -1) if ws.shape[1] == 1 else ws
        if grids is None:
            with noise.active() if noise else _nothing():
                return G.synthesize(ws, grid, opts)
        images = []
        for i in range(n):  # one grid per target
            with noise.active(i) if noise else _nothing():
                images.append(G.synthesize(ws[i:i + 1], grids.grid(i), opts))
        return torch.cat(images)

    with torch.no_grad():
        if grids is not None and cfg.grid_search:
            z = torch.randn(16, G.cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(device)
            sample_ws = G.mapping(z)[:, None].expand(-1, G.num_ws, -1)
            grids.search(lambda ws, g: G.synthesize(ws, g, opts), sample_ws, target)
        render(w_opt)  # creates the noise maps on the first render
    params = ([w_opt] if cfg.optimize_w else []) + (list(noise.maps.values()) if noise else [])
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=cfg.lr) if params else None
    grid_opt = torch.optim.Adam(grids.parameters(), lr=cfg.grid_lr) if grids else None
    history: list[dict] = []
    for step in tqdm(range(cfg.steps), disable=not progress, desc="projecting", dynamic_ncols=True):
        t = step / cfg.steps
        lr = _lr_at(t, cfg)
        for group in optimizer.param_groups if optimizer else []:
            group["lr"] = lr
        if grid_opt:  # the same ramps, scaled to the grid's own rate
            for group in grid_opt.param_groups:
                group["lr"] = cfg.grid_lr * lr / cfg.lr
        w_noise_scale = w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
        w_noise = torch.randn(w_opt.shape, generator=rng).to(device) * (w_noise_scale if cfg.optimize_w else 0.0)
        images = render(w_opt + w_noise)
        total, parts = dist(images)
        loss = total.sum()
        reg = noise.regularization() if noise else torch.zeros([])
        loss = loss + cfg.noise_weight * reg * n
        if optimizer:
            optimizer.zero_grad(set_to_none=True)
        if grid_opt:
            grid_opt.zero_grad(set_to_none=True)
        loss.backward()
        if optimizer:
            optimizer.step()
        if grid_opt:
            grid_opt.step()
        if noise:
            noise.normalize()
        record = {"step": step, "lr": lr, "loss": float(total.detach().mean()), "noise_reg": float(reg.detach()),
                  **{k: float(v.detach().mean()) for k, v in parts.items()}}
        if grids:
            record["grid"] = grids.describe()
        history.append(record)
        if on_step is not None:
            on_step(step, record, images.detach())
    with torch.no_grad():
        final = render(w_opt)
        _, parts = dist(final)
    ws = (w_opt.expand(-1, G.num_ws, -1) if num_w == 1 else w_opt).detach()
    return Projection(ws=ws, images=final.detach(), psnr=psnr(final, target),
                      feature_distance=parts.get("feature"),
                      noise={k: v.detach() for k, v in (noise.maps.items() if noise else [])},
                      grids=[_detached(grids.grid(i)) for i in range(n)] if grids else [grid] * n,
                      history=history)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _GridParams:
    """Per-target content shift (dy, dx) and log-scale (a parameter only with `scale`), starting
    from `grid`'s own; the search tries rolled grids only with `roll`."""

    def __init__(self, grid: Grid, n: int, scale: bool = True, roll: bool = True) -> None:
        a = grid.affine
        if abs(float(a[0, 1])) > 1e-9 or abs(float(a[1, 0])) > 1e-9 or abs(float(a[0, 0] - a[1, 1])) > 1e-9:
            raise UsageError("--optimize-grid starts from a shifted or zoomed grid, not a rotated or stretched one")
        s = float(a[0, 0])
        off = (s - 1) / 2
        self.size = grid.size
        self.periods = [grid.period] * n
        self.shift = torch.tensor([[off - float(a[1, 2]), off - float(a[0, 2])]] * n, dtype=torch.float64,
                                  requires_grad=True)  # [N, 2] (dy, dx)
        self.log_scale = torch.full((n,), math.log(s), dtype=torch.float64, requires_grad=scale)
        self.scale, self.roll = scale, roll

    def parameters(self) -> list[torch.Tensor]:
        return [self.shift, self.log_scale] if self.scale else [self.shift]

    @torch.no_grad()
    def search(self, synthesize, sample_ws: torch.Tensor, target: torch.Tensor, step: int = 4) -> None:
        """Start each target from the candidate grid where the generator draws where the target has
        ink: candidates are content shifts on a `step`-px lattice over the canvas, zoom 1 or 2
        (about the top-left corner; the starting zoom only without `scale`), plain or rolled
        (period = the canvas; plain only without `roll`); each is scored by the
        normalised cross-correlation of the target's ink map with the mean ink map of renders of
        `sample_ws` [K, num_ws, w_dim] on that grid (ink: the brightest channel)."""
        h, w = self.size
        candidates = []
        log_scales = [math.log(1.0), math.log(0.5)] if self.scale else [float(self.log_scale[0])]
        for period in (None, (float(h), float(w))) if self.roll else (None,):
            for log_scale in log_scales:
                for dy in range(-h // 2, h // 2 + 1, step):
                    for dx in range(-w // 2, w // 2 + 1, step):
                        candidates.append((period, torch.tensor([float(dy), float(dx)], dtype=torch.float64),
                                           torch.tensor(log_scale, dtype=torch.float64)))

        def unit_ink(images: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, H*W], zero mean, unit norm
            ink = images.amax(dim=1).flatten(1)
            ink = ink - ink.mean(dim=1, keepdim=True)
            return ink / ink.norm(dim=1, keepdim=True).clamp_min(1e-8)

        t = unit_ink(target).cpu()  # [N, H*W]
        maps = torch.stack([unit_ink(synthesize(sample_ws, param_grid(h, w, sh, ls, period)).mean(dim=0, keepdim=True))[0]
                            for period, sh, ls in candidates]).cpu()  # [K_candidates, H*W]
        choice = (t @ maps.T).argmax(dim=1).tolist()
        self.periods = [candidates[c][0] for c in choice]
        self.shift.data.copy_(torch.stack([candidates[c][1] for c in choice]))
        self.log_scale.data.copy_(torch.stack([candidates[c][2] for c in choice]))

    def grid(self, i: int) -> Grid:
        return param_grid(*self.size, self.shift[i], self.log_scale[i], self.periods[i])

    def describe(self) -> list[dict]:
        return [{"dy": round(float(s[0]), 4), "dx": round(float(s[1]), 4), "zoom": round(float((-ls).exp()), 4),
                 "roll": p is not None} for s, ls, p in zip(self.shift.detach(), self.log_scale.detach(), self.periods)]


def _detached(grid: Grid) -> Grid:
    return Grid(grid.height, grid.width, grid.affine.detach().clone(), grid.period)


# ------------------------------------------------------------------------------ files

def save_latent(path: str | Path, result: Projection, meta: dict) -> Path:
    """`ws` [N, num_ws, w_dim], `noise.<name>` maps and `grid.affine` [N, 3, 3] as safetensors
    (written atomically) with `meta` (JSON) in the header."""
    from safetensors.torch import save_file

    from posgen.files import atomic_write

    tensors = {"ws": result.ws.float().cpu().contiguous(),
               "grid.affine": torch.stack([g.affine for g in result.grids]).cpu().contiguous()}
    tensors.update({f"noise.{k}": v.float().cpu().contiguous() for k, v in result.noise.items()})
    header = {"format": "posgen-latent-v1", "meta": json.dumps(meta),
              "grid_size": json.dumps(list(result.grids[0].size)),
              "grid_period": json.dumps(result.grids[0].period)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_latent(path: str | Path) -> tuple[torch.Tensor, dict]:
    """(ws [N, num_ws, w_dim], meta) of a file written by `save_latent`; DataError if unreadable."""
    from safetensors import SafetensorError, safe_open

    from posgen.errors import one_line

    p = Path(path)
    if not p.is_file():
        raise DataError(f"no latent file at {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != "posgen-latent-v1" or "ws" not in f.keys():
                raise DataError(f"{p} is not a posgen latent file (written by `posgen project`)")
            ws = f.get_tensor("ws")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"cannot read latent file {p}: {one_line(e)}") from None
    return ws, json.loads(header.get("meta", "{}"))


def read_image(path: str | Path, size: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """An image file as [1, C, H, W] in [-1, 1]; DataError if unreadable or not `size` (H, W)."""
    from posgen.data.images import load_image

    p = Path(path)
    im = load_image(p, str(p))  # RGB, any mode, size checked before decoding
    arr = np.asarray(im if channels == 3 else im.convert("L"))
    if arr.shape[:2] != tuple(size):
        raise DataError(f"image {p} is {arr.shape[0]}x{arr.shape[1]}; the canvas is {size[0]}x{size[1]} "
                        f"(resize it, or choose the canvas with --zoom/--size)")
    x = torch.from_numpy(arr.copy()).float() / 127.5 - 1
    return (x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]).contiguous()


def write_outputs(out: Path, result: Projection, target: torch.Tensor, meta: dict, trace: list[torch.Tensor],
                  fps: int = 10) -> dict:
    """OUT/latent.safetensors, reconstruction.png (target | reconstruction in compare.png),
    trace.gif, loss.jsonl, summary.json; returns the summary."""
    from posgen.apps.video import GifWriter, upscale
    from posgen.viz import save_image, save_image_grid

    out.mkdir(parents=True, exist_ok=True)
    save_latent(out / "latent.safetensors", result, meta)
    n = result.images.shape[0]
    if n == 1:
        save_image(result.images[0], out / "reconstruction.png")
    else:
        for i in range(n):
            save_image(result.images[i], out / f"reconstruction{i:03d}.png")
    save_image_grid(torch.cat([target.cpu(), result.images.cpu()]), out / "compare.png", cols=n)
    if trace:
        with GifWriter(out / "trace.gif", fps=fps) as gif:
            for frame in trace:
                gif.write(upscale(frame, 4))
    with open(out / "loss.jsonl", "w") as f:
        for rec in result.history:
            f.write(json.dumps(rec) + "\n")
    summary = {**meta, "psnr": [round(float(v), 3) for v in result.psnr],
               "feature_distance": None if result.feature_distance is None else
               [round(float(v), 5) for v in result.feature_distance],
               "final_loss": result.history[-1]["loss"], "first_loss": result.history[0]["loss"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def trace_frame(target: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """One trace frame [C, H, 2W + 2]: target | current render of the first target image."""
    t, r = target[0].cpu(), images[0].cpu().clamp(-1, 1)
    gap = torch.full((t.shape[0], t.shape[1], 2), -1.0)
    return torch.cat([t, gap, r], dim=2)


__all__ = ["Distance", "NoiseMaps", "Projection", "ProjectionConfig", "feature_network", "load_latent", "param_grid",
           "project", "psnr", "read_image", "require_mapping", "save_latent", "w_statistics", "write_outputs"]
