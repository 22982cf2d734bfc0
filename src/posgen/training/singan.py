"""The SinGAN trainer (Shaham et al. Sec. 2.2, the official recipe): coarse to fine, one scale at a
time with the scales below frozen; per iteration `d_steps` WGAN-GP critic updates (gradient penalty
weight 0.1) and `g_steps` generator updates with the adversarial loss plus alpha = 10 times the
reconstruction MSE of a fixed noise map; Adam lr 5e-4, betas (0.5, 0.999), lr x 0.1 after 80 % of a
scale; a new scale starts from the weights of the one below when the widths match; its noise
amplitude is 0.1 x the RMSE between the real image and the upsampled reconstruction (Sec. 2.2).

Every fake is recomputed from the current weights before each backward pass, so nothing is
differentiated through a graph whose leaves an optimizer has since changed in place (the official
code's "one of the variables needed for gradient computation has been modified by an inplace
operation" on PyTorch >= 1.5).

One step of the driver (`posgen.training.loop`) is one iteration at the current scale; step k
trains scale k // iters_per_scale. All randomness of step k comes from `step_generator(seed, k, .)`,
so a run resumed within a scale continues exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from posgen.checkpoint import prefixed
from posgen.config import RunConfig
from posgen.errors import ConfigError, DataError
from posgen.models.singan import Generator, PatchDiscriminator, fit_image_size
from posgen.training.config import TrainConfig
from posgen.training.distributed import ranks
from posgen.training.loop import check_finite
from posgen.training.multiscale import step_generator

_D_NOISE, _G_NOISE, _GP = 0, 1, 2  # step_generator streams (x 8 per sub-step)


@dataclass
class SinGANTrainConfig(TrainConfig):
    """The official SinGAN recipe as defaults. The run's length is iters_per_scale x the pyramid's
    scales (known once the image is read), capped by `kimg` (thousands of iterations at batch 1)."""

    batch_size: int = 1            # noise samples per critic / generator update (the official code: 1)
    kimg: float = 1000.0           # a cap on the length (default: none in practice)
    snapshot_kimg: float = 0.5
    log_kimg: float = 0.05
    sample_seeds: int = 8
    iters_per_scale: int = 2000
    d_steps: int = 3
    g_steps: int = 3
    lr: float = 5e-4               # G and D
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_at: float = 0.8       # fraction of a scale's iterations after which lr x 0.1
    gp_weight: float = 0.1         # WGAN-GP lambda
    rec_weight: float = 10.0       # alpha
    noise_amp_init: float = 0.1    # noise amplitude = this x reconstruction RMSE

    def validate(self) -> None:
        super().validate()
        if self.iters_per_scale < 1 or self.d_steps < 1 or self.g_steps < 1:
            raise ValueError("train.iters_per_scale, train.d_steps and train.g_steps must be positive")
        if not self.lr > 0 or not 0 < self.lr_decay_at <= 1:
            raise ValueError("train.lr must be positive and train.lr_decay_at in (0, 1]")
        if self.gp_weight < 0 or self.rec_weight < 0 or self.noise_amp_init < 0:
            raise ValueError("train.gp_weight, train.rec_weight and train.noise_amp_init must be >= 0")
        if self.precision != "fp32" or self.channels_last or self.compile:
            raise ValueError("SinGAN trains in fp32 without channels_last or compile (its networks are small "
                             "and its images one); drop train.precision / channels_last / compile")
        if self.fid_samples:
            raise ValueError("train.fid_samples scores a model against a data set; a SinGAN learns one image "
                             "(compare its patch statistics with posgen evaluate --metrics swd)")

    def check_run(self, run) -> None:
        if run.discriminator is not None:
            raise ValueError("a SinGAN run has no discriminator section (its critics follow model)")
        self._scales = run.model.num_scales if tuple(run.model.image_size) != (0, 0) else None

    @property
    def total_steps(self) -> int:
        scales = getattr(self, "_scales", None)
        if scales is None:
            raise ConfigError("the length of a SinGAN run is known once its image sets model.image_size")
        return min(super().total_steps, self.iters_per_scale * scales)


def training_image(run: RunConfig) -> torch.Tensor:
    """The run's image as [1, 3, H, W] in [-1, 1], scaled to model.image_size (set here from the
    image, its longer side at most model.max_size, when it is (0, 0))."""
    from posgen.data.images import SAMPLE_PREFIX, load_image, load_sample_image, resize_image

    source = run.data.source
    if source == "digits":
        raise DataError("SinGAN learns from one image: give --data IMAGE_FILE or sample:NAME (e.g. sample:china.jpg)")
    if source.startswith(SAMPLE_PREFIX):
        image = load_sample_image(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(f"SinGAN learns from one image file; {source} is not one")
        image = load_image(path, str(path))
    m = run.model
    if tuple(m.image_size) == (0, 0):
        m.image_size = fit_image_size(image.height, image.width, m.max_size)
        run.validate()  # the pyramid is now known: checks it and the run's length
    image = resize_image(image, tuple(m.image_size), "stretch")
    x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width, 3)
    return (x.permute(2, 0, 1)[None].float() / 127.5 - 1)  # [1, 3, H, W]


class SinGANTrainer:
    """Networks, critics and optimizers of one SinGAN run (the `posgen.training.loop.Trainer` protocol).

    Building it reads the image and writes the pyramid into `cfg.model.image_size`, so the run's
    config.json rebuilds the generator without the image.
    """

    def __init__(self, cfg: RunConfig, family, seed: int = 0, device: str = "cpu") -> None:
        if ranks().world_size > 1:
            raise ConfigError("SinGAN trains in one process: it learns one image a scale at a time at batch 1 "
                              "(the official recipe), so there is no batch to share between ranks")
        self.cfg, self.seed, self.device = cfg, seed, device
        real = training_image(cfg).to(device)
        torch.manual_seed(seed)
        self.G: Generator = family.generator.build(cfg).to(device)
        m = cfg.model
        self.Ds = nn.ModuleList(PatchDiscriminator(m.channels_at(s), m.num_layers, m.padding)
                                for s in range(self.G.num_scales)).to(device)
        # the pyramid of reals, antialiased bicubic as the official imresize
        self.reals = [real if size == tuple(real.shape[-2:]) else
                      F.interpolate(real, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
                      for size in m.sizes]
        self.grid = self.G.default_grid()
        self.step, self.seconds = 0, 0.0
        self.opt_G = self.opt_D = None
        self._scale = -1  # the scale the optimizers belong to

    # ---- schedule ------------------------------------------------------------------------
    @property
    def scale(self) -> int:
        return min(self.step // self.cfg.train.iters_per_scale, self.G.num_scales - 1)

    def _optimizers(self, s: int) -> None:
        t = self.cfg.train
        self.opt_G = torch.optim.Adam(self.G.scales[s].parameters(), lr=t.lr, betas=t.betas)
        self.opt_D = torch.optim.Adam(self.Ds[s].parameters(), lr=t.lr, betas=t.betas)
        self._scale = s

    @torch.no_grad()
    def _start_scale(self, s: int) -> None:
        """Initialise scale s from scale s - 1 where the widths match, set its noise amplitude, new optimizers."""
        G, m = self.G, self.cfg.model
        G.eval()
        if s > 0 and m.channels_at(s) == m.channels_at(s - 1):
            _copy_matching(G.scales[s], G.scales[s - 1])  # the coarsest head may take other channels (PE)
            _copy_matching(self.Ds[s], self.Ds[s - 1])
        if s > 0:
            prev = self._below(s, G.reconstruction_noise(self.grid, s))
            rmse = torch.sqrt(F.mse_loss(self._crop(prev), self.reals[s]))
            G.noise_amp[s] = self.cfg.train.noise_amp_init * rmse
        self._optimizers(s)
        from tqdm import tqdm

        h, w = m.sizes[s]
        tqdm.write(f"scale {s + 1}/{G.num_scales} ({h}x{w}): noise amplitude {float(G.noise_amp[s]):.4f}")

    # ---- pieces --------------------------------------------------------------------------
    def _below(self, s: int, noise: list[torch.Tensor]) -> torch.Tensor:
        """The frozen scales' output resampled onto scale s's input window (no gradient)."""
        spans = self.G.spans(self.grid, s)
        with torch.no_grad():
            x = self.G.synthesize([n.to(self.device) for n in noise[:s]], self.grid, upto=s) if s else None
            return self.G.upsampled(s, x, spans, noise[s].to(self.device))

    def _crop(self, prev: torch.Tensor) -> torch.Tensor:
        """Input window -> output window (padding-free mode: the valid convs' margin)."""
        if self.cfg.model.padding != "none":
            return prev
        m = self.cfg.model.margin
        return prev[..., m:prev.shape[-2] - m, m:prev.shape[-1] - m]

    def _fake(self, s: int, noise: list[torch.Tensor]) -> torch.Tensor:
        """Scale s's output from a noise pyramid (frozen scales below without gradient)."""
        prev = self._below(s, noise)
        span = self.G.spans(self.grid, s)[s][0]
        return self.G.scales[s](self.G.scale_input(s, noise[s].to(self.device), prev, self.grid, span), prev)

    def _noise(self, s: int, gen: torch.Generator) -> list[torch.Tensor]:
        n = self.cfg.train.batch_size
        return [torch.randn(n, *shape, generator=gen) for shape in self.G.noise_shapes(self.grid, s)]

    def _gradient_penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """WGAN-GP on one random interpolate per sample; the official code takes the gradient norm
        over channels at every pixel."""
        a = torch.rand(len(fake), 1, 1, 1, generator=gen).to(fake)
        x = (a * real + (1 - a) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()

    # ---- one iteration -------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        t, step, G = self.cfg.train, self.step, self.G
        s = self.scale
        if self._scale != s:
            self._start_scale(s)
        k = step - s * t.iters_per_scale
        lr = t.lr * (0.1 if k >= t.lr_decay_at * t.iters_per_scale else 1.0)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        D, real = self.Ds[s], self.reals[s]
        G.eval()
        G.scales[s].train()
        D.train()
        real_b = real.expand(t.batch_size, -1, -1, -1)

        stats: dict[str, float] = {}
        D.requires_grad_(True)
        for j in range(t.d_steps):
            with torch.no_grad():
                fake = self._fake(s, self._noise(s, step_generator(self.seed, step, _D_NOISE + 8 * j)))
            gp = self._gradient_penalty(D, real_b, fake, step_generator(self.seed, step, _GP + 8 * j))
            d_real, d_fake = D(real).mean(), D(fake).mean()
            loss_D = d_fake - d_real + t.gp_weight * gp
            check_finite(loss_D, "D", step)
            self.opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            self.opt_D.step()
        stats.update({"loss/D": loss_D.item(), "D/real": d_real.item(), "D/fake": d_fake.item(), "D/gp": gp.item()})

        D.requires_grad_(False)
        rec_noise = G.reconstruction_noise(self.grid, s)
        for j in range(t.g_steps):
            fake = self._fake(s, self._noise(s, step_generator(self.seed, step, _G_NOISE + 8 * j)))
            adv = -D(fake).mean()
            rec = F.mse_loss(self._fake(s, rec_noise), real)
            loss_G = adv + t.rec_weight * rec
            check_finite(loss_G, "G", step)
            self.opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            self.opt_G.step()
        stats.update({"loss/G": loss_G.item(), "G/adv": adv.item(), "G/rec": rec.item(), "scale": float(s),
                      "noise_amp": float(G.noise_amp[s])})
        self.step += 1
        return stats

    # ---- state ---------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        out.update({f"D.{k}": v for k, v in self.Ds.state_dict().items()})
        if self.opt_G is not None and self.step < self.cfg.train.total_steps:
            for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
                for idx, st in opt.state_dict()["state"].items():
                    out.update({f"{name}.{idx}.{k}": torch.as_tensor(v) for k, v in st.items()})
        return out

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        self.G.load_state_dict(prefixed(tensors, "G"))
        self.Ds.load_state_dict(prefixed(tensors, "D"))
        self.step, self.seconds = int(state["step"]), float(state.get("seconds", 0.0))
        s, t = self.scale, self.cfg.train
        if self.step > s * t.iters_per_scale and self.step < t.total_steps:  # within a scale: its optimizers
            self._optimizers(s)
            for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
                sd = opt.state_dict()
                for key, v in prefixed(tensors, name).items():
                    idx, field = key.split(".", 1)
                    sd["state"].setdefault(int(idx), {})[field] = v
                opt.load_state_dict(sd)

    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """The reconstruction and fixed-seed samples at the scale reached, shown at the training size."""
        from posgen.viz import save_image_grid

        s, G = self.scale, self.G
        G.eval()
        seeds = list(range(self.cfg.train.sample_seeds))
        rec = G.synthesize([n.to(self.device) for n in G.reconstruction_noise(self.grid, s)], self.grid)
        samples = G.synthesize([n.to(self.device) for n in G.noise_pyramid(seeds, self.grid, s)], self.grid)
        imgs = torch.cat([rec, samples])
        if imgs.shape[-2:] != self.reals[-1].shape[-2:]:
            imgs = F.interpolate(imgs, size=self.reals[-1].shape[-2:], mode="bilinear", align_corners=False)
        save_image_grid(imgs.clamp(-1, 1).cpu(), path, cols=min(5, len(imgs)))


@torch.no_grad()
def _copy_matching(dst: nn.Module, src: nn.Module) -> None:
    """Copy every tensor of `src` whose name and shape `dst` shares."""
    own = dst.state_dict()
    own.update({k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape})
    dst.load_state_dict(own)
