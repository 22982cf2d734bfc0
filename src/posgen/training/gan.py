"""GAN training: StyleGAN2's recipe (non-saturating loss, lazy R1, EMA, Adam beta=(0, 0.99),
style mixing, x-flip) with multi-scale training (MS-PIE, Xu et al. Sec. 3.5, and Choi et
al.'s random resizing, Sec. 4.2).

All randomness of step k comes from generators seeded by (seed, k), so `--resume` continues
exactly: the resumed run computes the same numbers the uninterrupted one would have.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from posgen import checkpoint
from posgen.config import RunConfig
from posgen.data import DataError, open_dataset
from posgen.grid import Grid
from posgen.models import Discriminator, build_generator
from posgen.sampling import render_seeds
from posgen.training.multiscale import MultiScaleSampler, canvas_grid, step_generator
from posgen.viz import save_image_grid

# stream ids for step_generator
_DATA, _LATENT, _MIX, _FLIP, _NOISE, _CYLINDER = range(6)


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, ...); the message says where it stopped."""


@dataclass
class Trainer:
    """Holds the networks and optimizers of one run; `train_step(step)` advances one iteration."""

    cfg: RunConfig
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        torch.manual_seed(self.seed)
        self.G = build_generator(cfg.model).to(self.device)
        self.D = Discriminator(cfg.discriminator).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=t.lr, betas=t.betas, eps=1e-8)
        c = t.r1_interval / (t.r1_interval + 1)  # lazy regularization (StyleGAN2 App. B)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=t.lr * c, betas=(t.betas[0] ** c, t.betas[1] ** c), eps=1e-8)
        self.res = cfg.model.resolution
        self.dataset = open_dataset(cfg.data, (self.res, self.res))
        if len(self.dataset) == 0:
            raise TrainingError(f"data source {cfg.data.source} is empty")
        ms = t.multiscale
        self.scales = MultiScaleSampler(ms.sizes, ms.probs, self.seed) if ms.sizes else None
        self.step = 0
        self.seconds = 0.0

    # ---- one iteration -------------------------------------------------------------------
    def _reals(self, step: int, size: int) -> torch.Tensor:
        n = len(self.dataset)
        idx = torch.randint(n, (self.cfg.train.batch_size,), generator=step_generator(self.seed, step, _DATA))
        if hasattr(self.dataset, "images"):
            x = self.dataset.images[idx]
        else:
            x = torch.stack([self.dataset[int(i)] for i in idx])
        x = x.to(self.device, torch.float32) / 127.5 - 1  # [N, 3, H, W] in [-1, 1]
        if self.cfg.train.xflip:
            flip = torch.rand(len(x), generator=step_generator(self.seed, step, _FLIP)) < 0.5
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(3), x)
        return resize(x, size)

    def _grid(self, step: int, size: int) -> Grid:
        grid = canvas_grid(self.G.default_grid(), size, self.cfg.train.multiscale.grid)
        circumference = getattr(self.G.cfg, "circumference", 0)
        if circumference:  # a crop at a random whole-pixel angle around the cylinder (CIPS Sec. 4.8)
            offset = int(torch.randint(circumference, [], generator=step_generator(self.seed, step, _CYLINDER)))
            grid = grid.shift(0, -offset)
        return grid

    def _ws(self, step: int, stream_offset: int = 0) -> torch.Tensor:
        t, G = self.cfg.train, self.G
        gen = step_generator(self.seed, step, _LATENT + 8 * stream_offset)
        z = torch.randn(2, t.batch_size, self.cfg.model.z_dim, generator=gen).to(self.device)
        ws = G.mapping(z[0])[:, None].repeat(1, G.num_ws, 1)  # [N, num_ws, w_dim]
        mix = step_generator(self.seed, step, _MIX + 8 * stream_offset)
        if t.style_mixing > 0 and torch.rand([], generator=mix) < t.style_mixing:
            cutoff = int(torch.randint(1, G.num_ws, [], generator=mix))
            ws[:, cutoff:] = G.mapping(z[1])[:, None]
        return ws

    def train_step(self) -> dict[str, float]:
        t, step = self.cfg.train, self.step
        size = self.scales(step) if self.scales else self.res
        d_size = self.res if t.multiscale.resize_to_discriminator else size
        grid = self._grid(step, size)
        torch.manual_seed(self.seed * 7919 + step)  # noise inputs
        reals = self._reals(step, d_size)

        # G: non-saturating loss softplus(-D(G(z)))
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        ws = self._ws(step)
        fakes = resize(self.G.synthesis(ws, grid), d_size)
        loss_G = F.softplus(-self.D(fakes)).mean()
        _check_finite(loss_G, "G", step)
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()

        # D: softplus(D(fake)) + softplus(-D(real)), lazy R1 on reals
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        do_r1 = t.r1_gamma > 0 and step % t.r1_interval == 0
        reals = reals.detach().requires_grad_(do_r1)
        real_logits = self.D(reals)
        fake_logits = self.D(fakes.detach())
        loss_D = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        stats = {"loss/G": loss_G.item(), "loss/D": loss_D.item(),
                 "D/real": real_logits.mean().item(), "D/fake": fake_logits.mean().item(), "scale": size}
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            loss_D = loss_D + r1 * (t.r1_gamma / 2) * t.r1_interval
            stats["loss/R1"] = r1.item()
        _check_finite(loss_D, "D", step)
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()

        self._update_averages(ws)
        self.step += 1
        return stats

    @torch.no_grad()
    def _update_averages(self, ws: torch.Tensor) -> None:
        t = self.cfg.train
        self.G.mapping.w_avg.lerp_(ws[:, 0].mean(0), 1 - t.w_avg_beta)
        images_seen = (self.step + 1) * t.batch_size
        ema_images = t.ema_kimg * 1000
        if t.ema_rampup is not None:
            ema_images = min(ema_images, images_seen * t.ema_rampup)
        beta = 0.5 ** (t.batch_size / max(ema_images, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ---- state ---------------------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return self.step * self.cfg.train.batch_size / 1000

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
            out.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            for idx, st in opt.state_dict()["state"].items():
                out.update({f"{name}.{idx}.{k}": torch.as_tensor(v) for k, v in st.items()})
        return out

    def save(self, path: Path) -> None:
        checkpoint.save(path, self.state_tensors(), self.cfg,
                        {"step": self.step, "kimg": self.kimg, "seconds": self.seconds, "seed": self.seed,
                         "total_steps": self.cfg.train.total_steps})

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
            module.load_state_dict(checkpoint.prefixed(tensors, name))
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            sd = opt.state_dict()
            flat = checkpoint.prefixed(tensors, name)
            for key, v in flat.items():
                idx, field = key.split(".", 1)
                sd["state"].setdefault(int(idx), {})[field] = v
            opt.load_state_dict(sd)
        self.step, self.seconds, self.seed = int(state["step"]), float(state.get("seconds", 0.0)), int(state["seed"])

    def sample_grid(self, path: Path) -> None:
        """EMA samples on the training canvas (cylinders: whole 360-degree strips), fixed seeds, as one PNG."""
        seeds = list(range(self.cfg.train.sample_seeds))
        if getattr(self.G.cfg, "circumference", 0):
            imgs = render_seeds(self.G_ema, seeds[:8], self.G_ema.panorama_grid())
            save_image_grid(imgs, path, cols=1)
            return
        imgs = render_seeds(self.G_ema, seeds)
        save_image_grid(imgs, path, cols=min(8, len(imgs)))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize with antialiasing (identity when the size already matches)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _check_finite(loss: torch.Tensor, name: str, step: int) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(f"{name} loss is {loss.item()} at step {step}; stopping (the last checkpoint is kept)")


def train(cfg: RunConfig, out_dir: str | Path, *, seed: int = 0, device: str = "cpu", resume: bool = False,
          progress: bool = True, max_seconds: float | None = None) -> Path:
    """Train `cfg` into `out_dir` (checkpoint, config.json, sample PNGs, TensorBoard logs).

    With resume=True the run continues from out_dir's checkpoint with its stored config.
    `max_seconds` stops early (after a checkpoint) once that much wall time has passed.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    out = Path(out_dir)
    ckpt_path = out / checkpoint.CHECKPOINT_NAME
    if resume:
        tensors, cfg, state = checkpoint.load(ckpt_path)
        seed = int(state["seed"])
    elif ckpt_path.exists():
        raise TrainingError(f"{out} already holds a run; use --resume {out} or another --out")
    cfg.validate()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    trainer = Trainer(cfg, seed=seed, device=device)
    if resume:
        trainer.restore(tensors, state)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(out / "config.json", lambda tmp: Path(tmp).write_text(cfg.to_json()))
    t = cfg.train
    total = t.total_steps
    snapshot_steps = max(1, round(t.snapshot_kimg * 1000 / t.batch_size))
    writer = SummaryWriter(str(out / "logs"))
    bar = tqdm(total=total, initial=trainer.step, disable=not progress, unit="step", dynamic_ncols=True)
    started = time.time()
    try:
        while trainer.step < total:
            t0 = time.perf_counter()
            try:
                stats = trainer.train_step()
            except DataError:
                # reals are read before any update: the state is that of the last whole step
                if trainer.step > 0:
                    trainer.save(ckpt_path)
                raise
            dt = time.perf_counter() - t0
            trainer.seconds += dt
            stats["images_per_s"] = t.batch_size / dt
            step = trainer.step
            for k, v in stats.items():
                writer.add_scalar(k, v, global_step=step * t.batch_size)
            bar.update(1)
            bar.set_postfix({"kimg": f"{trainer.kimg:.1f}", "img/s": f"{stats['images_per_s']:.0f}",
                             "G": f"{stats['loss/G']:.2f}", "D": f"{stats['loss/D']:.2f}"})
            timeout = max_seconds is not None and time.time() - started > max_seconds
            if step % snapshot_steps == 0 or step == total or timeout:
                trainer.save(ckpt_path)
                trainer.sample_grid(out / f"samples-{step:07d}.png")
                if timeout:
                    break
    finally:
        bar.close()
        writer.close()
    return out
