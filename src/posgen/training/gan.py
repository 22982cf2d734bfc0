"""The GAN trainer: StyleGAN2's recipe (non-saturating loss, lazy R1, EMA, Adam beta=(0, 0.99),
style mixing, x-flip) with multi-scale training (MS-PIE, Xu et al. Sec. 3.5, and Choi et al.'s
random resizing, Sec. 4.2), for every family whose generator maps z to per-layer styles
(StyleGAN2, CIPS). The loop around it (resume, logs, snapshots) is `posgen.training.loop`.

All randomness of step k comes from generators seeded by (seed, k), so `--resume` continues
exactly: the resumed run computes the same numbers the uninterrupted one would have.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from posgen.checkpoint import prefixed
from posgen.config import RunConfig
from posgen.data import open_dataset
from posgen.data.loader import StepBatches
from posgen.errors import TrainingError
from posgen.grid import Canvas, Grid
from posgen.models.base import MappedGenerator, RenderOptions
from posgen.models.discriminator import mbstd_group
from posgen.ops.mapping import with_class
from posgen.sampling import render_seeds
from posgen.training.codes import CodeRegressor, glyph_shape
from posgen.training.loss import StyleGANLoss
from posgen.errors import ConfigError
from posgen.training.distributed import ranks
from posgen.training.loop import check_finite
from posgen.training.multiscale import MultiScaleSampler, step_generator
from posgen.training.precision import Precision, restore_scaler, scaler_tensors
from posgen.viz import save_image_grid

# stream ids for step_generator
# (7 is the multi-scale sampler's)
_DATA, _LATENT, _MIX, _FLIP, _NOISE, _CYLINDER, _AUGMENT_G, _AUGMENT_D, _NEAREST = 0, 1, 2, 3, 4, 5, 6, 8, 9


TRAINING_RENDER = RenderOptions(noise_mode="random")


class GANTrainer:
    """Holds the networks and optimizers of one GAN run; `train_step()` advances one iteration
    (the `posgen.training.loop.Trainer` protocol).

    Under torchrun each rank computes its share of every step's global batch (`Ranks.shard`, laid
    out so that D's minibatch-std groups are the single-process ones) and the gradients are averaged
    after each backward pass, R1's double backward included.
    """

    def __init__(self, cfg: RunConfig, family, seed: int = 0, device: str = "cpu") -> None:
        self.cfg, self.seed, self.device = cfg, seed, device
        t = cfg.train
        torch.manual_seed(self.seed)
        self.G = family.generator.build(cfg).to(self.device)
        self.D = family.discriminator(cfg.discriminator).to(self.device)
        self.loss = StyleGANLoss(self.D, t)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # InfoGAN's Q, trained with G on the same term (training/codes.py)
        self.Q = CodeRegressor(cfg.model.resolution, t.latent_codes).to(self.device) if t.latent_codes else None
        self.code_offset = 1 if cfg.discriminator.num_classes else 0  # z's first coordinate carries the class
        self.G_params = list(self.G.parameters()) + (list(self.Q.parameters()) if self.Q is not None else [])
        self.opt_G = torch.optim.Adam(self.G_params, lr=t.lr, betas=t.betas, eps=1e-8)
        c = t.r1_interval / (t.r1_interval + 1)  # lazy regularization (StyleGAN2 App. B)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=t.lr * t.d_lr_multiplier * c,
                                      betas=(t.betas[0] ** c, t.betas[1] ** c), eps=1e-8)
        self.res = cfg.model.resolution
        self.dataset = open_dataset(cfg.data, (self.res, self.res))
        if len(self.dataset) == 0:
            raise TrainingError(f"data source {cfg.data.source} is empty")
        self.conditional = cfg.discriminator.num_classes > 0
        self.interleave = mbstd_group(t.batch_size, cfg.discriminator.mbstd_group)
        if self.conditional:
            labels = getattr(self.dataset, "labels", None)
            if labels is None:
                raise ConfigError(f"a class-conditional run (num_classes {cfg.discriminator.num_classes}) needs a "
                                  f"labelled data source; {cfg.data.source} has no classes")
            if int(labels.max()) >= cfg.discriminator.num_classes or int(labels.min()) < 0:
                raise ConfigError(f"{cfg.data.source} has classes 0..{int(labels.max())}: "
                                  f"num_classes {cfg.discriminator.num_classes} is too few")
        self.class_slots = self._class_slots()
        if self.class_slots is not None:
            # the data's indices sorted by class: class c's images are by_class[class_start[c] + 0 .. class_size[c] - 1]
            self.by_class = torch.argsort(self.dataset.labels, stable=True)
            self.class_size = torch.bincount(self.dataset.labels, minlength=cfg.discriminator.num_classes)
            self.class_start = torch.cumsum(self.class_size, 0) - self.class_size
            if int(self.class_size.min()) == 0:
                raise ConfigError(f"{cfg.data.source} has no images of some of its {cfg.discriminator.num_classes} "
                                  "classes: packs, class groups and mode-seeking pairs need every class")
            self.slot_leaders = torch.tensor([self.class_slots.tolist().index(s)
                                              for s in range(int(self.class_slots.max()) + 1)])
        self.ranks = ranks()
        self.ranks.local_batch(t.batch_size)
        if self.ranks.world_size > 1 and self.loss.augment is not None:
            raise ConfigError("adaptive augmentation (train.augment) trains in one process only: its p controller "
                              "and per-image draws are not shared between ranks yet")
        if self.ranks.world_size > 1 and getattr(cfg.discriminator, "pack", 1) > 1:
            raise ConfigError("discriminator.pack trains in one process only: each rank would pack its own share")
        self.batches = StepBatches(self.dataset, self._indices, cfg.data.workers, pin_memory=device.startswith("cuda"))
        self.precision = Precision(t.precision, device)
        self.precision.prepare(self.G, self.D, channels_last=t.channels_last, fp32=(self.D,))
        self.scaler_G, self.scaler_D = self.precision.scaler(), self.precision.scaler()
        self._render = torch.compile(self._fakes) if t.compile else self._fakes
        ms = t.multiscale
        self.scales = MultiScaleSampler(ms.sizes, ms.probs, self.seed) if ms.sizes else None
        self.step = 0
        self.seconds = 0.0

    # ---- one iteration -------------------------------------------------------------------
    def _class_slots(self) -> torch.Tensor | None:
        """Which images of a batch share one class in a conditional run: int64 [N], equal values = one class
        (for reals and fakes alike), or None where each image's class is drawn on its own.
        - packs (`discriminator.pack` P > 1): each pack of P, so that D compares four of G's "3"s with four
          real ones (a packed D does not learn the classes of packs that mix them, docs/recipe.md);
        - `train.class_groups`: each minibatch-stddev group (image i is in group i mod N/G), so that D's
          stddev feature measures the spread inside one class, where AC-GAN's collapse is;
        - mode seeking (`train.diversity`): image i and i + N/2, the pairs of MSGAN, which compares two
          latents of one condition."""
        t, n = self.cfg.train, self.cfg.train.batch_size
        if not self.conditional or not (self.cfg.discriminator.pack > 1 or t.class_groups or t.diversity > 0):
            return None
        slots = torch.arange(n)
        if self.cfg.discriminator.pack > 1:
            slots = slots // self.cfg.discriminator.pack
        elif t.class_groups:
            slots = slots % (n // self.interleave)
        if t.diversity > 0:
            half = torch.arange(n // 2)
            slots = joined_slots(slots, torch.cat([half, half, torch.arange(n // 2, n - n // 2)]))
        return slots

    def _indices(self, step: int) -> torch.Tensor:
        """This rank's share of step `step`'s data indices (each class slot's reals from one class)."""
        gen = step_generator(self.seed, step, _DATA)
        if self.class_slots is not None:
            classes = torch.randint(len(self.class_size), (len(self.slot_leaders),), generator=gen)[self.class_slots]
            within = (torch.rand(len(classes), generator=gen, dtype=torch.float64) * self.class_size[classes]).long()
            idx = self.by_class[self.class_start[classes] + within]
        else:
            idx = torch.randint(len(self.dataset), (self.cfg.train.batch_size,), generator=gen)
        return self.ranks.shard(idx, self.interleave)

    def _reals(self, step: int, size: int) -> torch.Tensor:
        x = self.batches.batch(step).to(self.device, torch.float32, non_blocking=True) / 127.5 - 1  # [n, 3, H, W] in [-1, 1]
        if self.cfg.train.xflip:
            flip = torch.rand(self.cfg.train.batch_size, generator=step_generator(self.seed, step, _FLIP)) < 0.5
            x = torch.where(self.ranks.shard(flip, self.interleave).to(self.device)[:, None, None, None], x.flip(3), x)
        x = resize(x, size)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.train.channels_last else x

    def _grid(self, step: int, size: int) -> Grid:
        base = self.G.default_grid()
        grid = Canvas.multiscale(size, self.cfg.train.multiscale.grid, self.res).grid(base)
        circumference = getattr(self.G.cfg, "circumference", 0)
        if circumference:  # a crop at a random whole-pixel angle around the cylinder (CIPS Sec. 4.8)
            offset = int(torch.randint(circumference, [], generator=step_generator(self.seed, step, _CYLINDER)))
            grid = grid.shift(0, -offset)
        return grid

    def _ws(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ws or z for a mapping-free G, the latents z they came from [N, z_dim])."""
        t, G = self.cfg.train, self.G
        gen = step_generator(self.seed, step, _LATENT)
        z = torch.randn(2, t.batch_size, self.cfg.model.z_dim, generator=gen)
        if self.class_slots is not None:  # each class slot's fakes ask for the class of its first latent
            z[0] = with_class(z[0], G.mapping.classes(z[0, self.slot_leaders])[self.class_slots], G.mapping.num_classes)
        z = torch.stack([self.ranks.shard(z[0], self.interleave), self.ranks.shard(z[1], self.interleave)]).to(self.device)
        ws = self._styles(z[0])
        if not isinstance(G, MappedGenerator):
            return ws, z[0]
        mix = step_generator(self.seed, step, _MIX)
        if t.style_mixing > 0 and torch.rand([], generator=mix) < t.style_mixing:
            cutoff = int(torch.randint(1, G.num_ws, [], generator=mix))
            ws[:, cutoff:] = G.mapping(z[1])[:, None]
        return ws, z[0]

    def _styles(self, z: torch.Tensor) -> torch.Tensor:
        """G's input for latents z [N, z_dim]: one style per layer [N, num_ws, w_dim], or z itself for a
        mapping-free generator (DCGAN)."""
        if not isinstance(self.G, MappedGenerator):
            return z
        return self.G.mapping(z)[:, None].repeat(1, self.G.num_ws, 1)

    def _nearest_pull(self, step: int, reals: torch.Tensor, real_classes: torch.Tensor | None, grid: Grid) -> torch.Tensor:
        """IMLE's term (Li & Malik 2018, Alg. 1): G draws `nearest_candidates` samples per real image (of the
        real's class in a conditional run); each real picks the nearest of the batch's candidates of its class by
        glyph shape (HSV value standardised per image), which is drawn again with gradients and pulled towards
        the real: the mean squared error of their shapes. Where the adversarial loss lets G drop glyphs (a
        collapse costs D's loss little), this term makes every real glyph have a latent whose image resembles
        it, the recall that a collapsed G lacks. Hue is left to D. Pooling the candidates of one class gives
        each real more of them at no cost: with `train.class_groups` a group's four reals share 4 × K."""
        rk, t, z_dim = self.ranks, self.cfg.train, self.cfg.model.z_dim
        k, batch = t.nearest_candidates, t.batch_size
        # the whole batch's candidates, drawn alike on every rank; each rank renders those of its reals and the
        # ranks share the shapes, so that every real chooses among all of the batch's (as in one process)
        z = torch.randn(batch, k, z_dim, generator=step_generator(self.seed, step, _NEAREST)).to(self.device)
        classes = rk.gather(real_classes, self.interleave).repeat_interleave(k) if real_classes is not None else None
        if classes is not None:  # each candidate's class, [batch * k]
            z = with_class(z.flatten(0, 1), classes, self.G.mapping.num_classes).view(batch, k, z_dim)
        mine = rk.shard(torch.arange(batch), self.interleave)
        target = glyph_shape(reals)
        with torch.no_grad():
            local = glyph_shape(resize(self._fakes(self._styles(z[mine].flatten(0, 1)), grid), reals.shape[-1]))
            candidates = rk.gather(local.view(len(reals), -1), self.interleave).view(batch * k, -1)
            distance = torch.cdist(target.flatten(1), candidates).square()  # [local reals, batch * k]
            if classes is not None:  # candidates of another class are out of reach
                other = real_classes[:, None] != classes[None, :]
                distance = distance.masked_fill(other, float("inf"))
            nearest = z.flatten(0, 1)[distance.argmin(1)]
        drawn = resize(self._fakes(self._styles(nearest), grid), reals.shape[-1])
        return (glyph_shape(drawn) - target).square().mean()

    def _fakes(self, ws: torch.Tensor, grid: Grid) -> torch.Tensor:
        if isinstance(self.G, MappedGenerator):
            return self.G.synthesize(ws, grid, TRAINING_RENDER)
        return self.G.render(ws, grid)  # ws: z for a mapping-free generator

    def train_step(self) -> dict[str, float]:
        t, step, rk = self.cfg.train, self.step, self.ranks
        size = self.scales(step) if self.scales else self.res
        d_size = self.res if t.multiscale.resize_to_discriminator else size
        grid = self._grid(step, size)
        torch.manual_seed((self.seed * 7919 + step) * rk.world_size + rk.rank)  # noise inputs, each rank its own
        reals = self._reals(step, d_size)
        real_classes = self.dataset.labels[self._indices(step)].to(self.device) if self.conditional else None

        kimg = self.kimg
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        with self.precision.autocast():
            ws, z = self._ws(step)
            fakes = resize(self._render(ws, grid), d_size)
            fake_classes = self.G.mapping.classes(z) if self.conditional else None
            loss_G = self.loss.generator_loss(fakes, kimg, step_generator(self.seed, step, _AUGMENT_G), fake_classes)
            if t.diversity > 0:
                loss_G = loss_G + t.diversity * mode_seeking_loss(fakes, z)
            if self.Q is not None:
                loss_codes = self.Q.loss(fakes, z[:, self.code_offset:self.code_offset + t.latent_codes])
                loss_G = loss_G + t.code_weight * loss_codes
            do_nearest = t.nearest_weight > 0 and step % t.nearest_interval == 0
            if do_nearest:
                loss_nearest = self._nearest_pull(step, reals, real_classes, grid)
                loss_G = loss_G + t.nearest_weight * t.nearest_interval * loss_nearest
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler_G.scale(loss_G).backward()
        loss_G = rk.reduce(self.G_params, loss_G)
        check_finite(loss_G, "G", step)
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()

        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        do_r1 = t.r1_gamma > 0 and step % t.r1_interval == 0
        with self.precision.autocast():
            loss_D, stats = self.loss.discriminator_loss(reals, fakes, kimg, do_r1,
                                                         step_generator(self.seed, step, _AUGMENT_D),
                                                         real_classes, fake_classes)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler_D.scale(loss_D).backward()
        loss_D = rk.reduce(self.D.parameters(), loss_D)
        check_finite(loss_D, "D", step)
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()

        self._update_averages(ws)
        self.step += 1
        if self.Q is not None:
            stats["loss/codes"] = loss_codes.item()
        if do_nearest:
            stats["loss/nearest"] = loss_nearest.item()
        return rk.mean_stats({"loss/G": loss_G.item(), **stats, "scale": size})

    @torch.no_grad()
    def _update_averages(self, ws: torch.Tensor) -> None:
        t = self.cfg.train
        if isinstance(self.G, MappedGenerator):
            self.G.mapping.w_avg.lerp_(ws[:, 0].float().mean(0), 1 - t.w_avg_beta)
        self.ranks.average_buffers(self.G)  # w_avg from each rank's shard -> from the whole batch
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

    def _modules(self) -> list[tuple[str, torch.nn.Module]]:
        stateful = [("G", self.G), ("G_ema", self.G_ema), ("D", self.D)]
        stateful += [("Q", self.Q)] if self.Q is not None else []
        return stateful + ([("augment", self.loss.augment)] if self.loss.augment is not None else [])

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, module in self._modules():
            out.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            for idx, st in opt.state_dict()["state"].items():
                out.update({f"{name}.{idx}.{k}": torch.as_tensor(v) for k, v in st.items()})
        for name, scaler in (("scaler_G", self.scaler_G), ("scaler_D", self.scaler_D)):
            out.update(scaler_tensors(name, scaler))
        return out

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        for name, module in self._modules():
            module.load_state_dict(prefixed(tensors, name))
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            sd = opt.state_dict()
            flat = prefixed(tensors, name)
            for key, v in flat.items():
                idx, field = key.split(".", 1)
                sd["state"].setdefault(int(idx), {})[field] = v
            opt.load_state_dict(sd)
        for name, scaler in (("scaler_G", self.scaler_G), ("scaler_D", self.scaler_D)):
            restore_scaler(name, scaler, tensors)
        self.step, self.seconds = int(state["step"]), float(state.get("seconds", 0.0))

    def sample_grid(self, path: Path) -> None:
        """EMA samples on the training canvas (cylinders: whole 360-degree strips), fixed seeds, as one PNG."""
        seeds = list(range(self.cfg.train.sample_seeds))
        if getattr(self.G.cfg, "circumference", 0):  # cylindrical CIPS
            imgs = render_seeds(self.G_ema, seeds[:8], self.G_ema.panorama_grid())
            save_image_grid(imgs, path, cols=1)
            return
        imgs = render_seeds(self.G_ema, seeds)
        save_image_grid(imgs, path, cols=min(8, len(imgs)))


def joined_slots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Slots (int64 [N], equal values = one class) in which two images share a class when they share a slot of
    `a` or of `b`, chained: the connected components, numbered 0, 1, ... in order of first appearance."""
    label = torch.arange(len(a))
    while True:
        new = label
        for s in (a, b):  # each image takes the lowest label in its slot
            new = torch.full((int(s.max()) + 1,), len(a)).scatter_reduce(0, s, new, "amin")[s]
        if torch.equal(new, label):
            return torch.unique(label, return_inverse=True)[1]
        label = new


def mode_seeking_loss(images: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019, MSGAN Eq. 3): pairs the first half of the batch with the second and
    returns 1 / (mean |V(G(z1)) - V(G(z2))| / mean |z1 - z2|), small when images move with z. V is HSV's
    value (the largest channel): hue alone, which the last to-RGB controls cheaply, is no diversity. In a
    class-conditional run the trainer draws each pair in one class, as MSGAN pairs latents of one condition."""
    n = len(images) // 2
    value = images[:2 * n].amax(1)
    ratio = (value[:n] - value[n:2 * n]).abs().mean() / (z[:n] - z[n:2 * n]).abs().mean()
    return 1 / (ratio + eps)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize with antialiasing (identity when the size already matches)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
