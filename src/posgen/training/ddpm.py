"""The DDPM trainer: eps-prediction (L_simple, Ho et al. Eq. 14) for the U-Net of
`posgen.models.unet`, Adam with betas (0, 0.99) as Choi et al. (App. C.3), Ho et al.'s lr warmup and
gradient clipping, an EMA of the weights. The loop around it (resume, logs, snapshots) is
`posgen.training.loop`.

All randomness of step k (images, timesteps, noise, dropout) comes from generators seeded by
(seed, k), so `--resume` continues exactly.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from posgen.checkpoint import prefixed
from posgen.config import RunConfig
from posgen.data import open_dataset
from posgen.data.loader import StepBatches
from posgen.errors import DataError, TrainingError
from posgen.sampling import render_seeds
from posgen.training.distributed import ranks
from posgen.training.loop import check_finite
from posgen.training.multiscale import step_generator
from posgen.training.precision import Precision, restore_scaler, scaler_tensors
from posgen.viz import save_image_grid

# stream ids for step_generator
_DATA, _TIME, _NOISE, _FLIP, _DROPOUT = range(5)


class DDPMTrainer:
    """The networks and optimizer of one DDPM run (the `posgen.training.loop.Trainer` protocol).
    Under torchrun each rank trains its contiguous share of every step's global batch."""

    def __init__(self, cfg: RunConfig, family, seed: int = 0, device: str = "cpu") -> None:
        self.cfg, self.seed, self.device = cfg, seed, device
        t = cfg.train
        torch.manual_seed(seed)
        self.G = family.generator.build(cfg).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(self.G.parameters(), lr=t.lr, betas=t.betas, eps=1e-8)
        self.res = cfg.model.resolution
        self.dataset = open_dataset(cfg.data, (self.res, self.res))
        if len(self.dataset) == 0:
            raise TrainingError(f"data source {cfg.data.source} is empty")
        self.ranks = ranks()
        self.ranks.local_batch(t.batch_size)
        self.batches = StepBatches(self.dataset, self._indices, cfg.data.workers, pin_memory=device.startswith("cuda"))
        self.precision = Precision(t.precision, device)
        self.precision.prepare(self.G, channels_last=t.channels_last)
        self.scaler = self.precision.scaler()
        self._denoise = torch.compile(self.G.unet) if t.compile else self.G.unet
        self.step = 0
        self.seconds = 0.0

    def _indices(self, step: int) -> torch.Tensor:
        """This rank's share of step `step`'s data indices."""
        idx = torch.randint(len(self.dataset), (self.cfg.train.batch_size,), generator=step_generator(self.seed, step, _DATA))
        return self.ranks.shard(idx)

    def _reals(self, step: int) -> torch.Tensor:
        """This rank's share of a batch of training images in [-1, 1], [n, C, H, W]."""
        t = self.cfg.train
        x = self.batches.batch(step)
        if x.shape[1:] != (self.cfg.model.img_channels, self.res, self.res):
            raise DataError(f"data source {self.cfg.data.source} gives images of shape {tuple(x.shape[1:])}, "
                            f"the model wants {(self.cfg.model.img_channels, self.res, self.res)}")
        x = x.to(self.device, torch.float32, non_blocking=True) / 127.5 - 1
        if t.xflip:
            flip = self.ranks.shard(torch.rand(t.batch_size, generator=step_generator(self.seed, step, _FLIP)) < 0.5)
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(3), x)
        return x.contiguous(memory_format=torch.channels_last) if t.channels_last else x

    def train_step(self) -> dict[str, float]:
        t, step, G, rk = self.cfg.train, self.step, self.G, self.ranks
        x0 = self._reals(step)
        T = G.diffusion.num_timesteps
        times = rk.shard(torch.randint(T, (t.batch_size,), generator=step_generator(self.seed, step, _TIME)))
        noise = rk.shard(torch.randn((t.batch_size, *x0.shape[1:]), generator=step_generator(self.seed, step, _NOISE)))
        times, noise = times.to(self.device), noise.to(self.device).to(x0)
        lr = t.lr * min(1.0, (step + 1) * t.batch_size / (t.warmup_kimg * 1000)) if t.warmup_kimg > 0 else t.lr
        for group in self.opt.param_groups:
            group["lr"] = lr
        torch.manual_seed((self.seed * 7919 + step) * rk.world_size + rk.rank)  # dropout, each rank its own
        G.train()
        grid = G.default_grid()
        encodings = G.unet.encodings(grid, self.device)
        with self.precision.autocast():
            loss = G.diffusion.loss(lambda x, tt: self._denoise(x, tt, grid, encodings), x0, times, noise)  # Ho Eq. 14
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        loss = rk.reduce(G.parameters(), loss)
        check_finite(loss, "diffusion", step)
        self.scaler.unscale_(self.opt)
        norm = torch.nn.utils.clip_grad_norm_(G.parameters(), t.grad_clip if t.grad_clip > 0 else float("inf"))
        self.scaler.step(self.opt)
        self.scaler.update()
        self._update_ema()
        self.step += 1
        return rk.mean_stats({"loss/eps": loss.item(), "grad_norm": float(norm), "lr": lr})

    @torch.no_grad()
    def _update_ema(self) -> None:
        t = self.cfg.train
        ema_images = t.ema_kimg * 1000
        if t.ema_rampup is not None:
            ema_images = min(ema_images, (self.step + 1) * t.batch_size * t.ema_rampup)
        beta = 0.5 ** (t.batch_size / max(ema_images, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)

    # ---- state ---------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        out.update({f"G_ema.{k}": v for k, v in self.G_ema.state_dict().items()})
        out.update({f"opt.{i}.{k}": torch.as_tensor(v)
                    for i, st in self.opt.state_dict()["state"].items() for k, v in st.items()})
        out.update(scaler_tensors("scaler", self.scaler))
        return out

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        self.G.load_state_dict(prefixed(tensors, "G"))
        self.G_ema.load_state_dict(prefixed(tensors, "G_ema"))
        sd = self.opt.state_dict()
        for key, v in prefixed(tensors, "opt").items():
            i, name = key.split(".", 1)
            sd["state"].setdefault(int(i), {})[name] = v
        self.opt.load_state_dict(sd)
        restore_scaler("scaler", self.scaler, tensors)
        self.step, self.seconds = int(state["step"]), float(state.get("seconds", 0.0))

    def sample_grid(self, path: Path) -> None:
        """EMA samples with the snapshot sampler (default ancestral, 100 steps), fixed seeds, one PNG."""
        t = self.cfg.train
        imgs = render_seeds(self.G_ema, list(range(t.sample_seeds)), batch_size=32, sampler=t.sample_sampler,
                            steps=t.sample_steps)
        save_image_grid(imgs, path, cols=min(8, len(imgs)))
