"""Training settings: the driver's (`TrainConfig`) and the GAN trainer's (`GANTrainConfig`, StyleGAN2
reference values from DESIGN.md as defaults). Plain dataclasses: importing this costs no torch."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

from posgen.errors import ConfigError


MAX_BATCH = 65536       # images per step, all processes together
MAX_KIMG = 1e9          # a trillion images: anything longer is a typo
MIN_FID_SAMPLES, MAX_FID_SAMPLES = 16, 100_000  # per-snapshot FID (train.fid_samples)


@dataclass
class MultiScaleConfig:
    """Multi-scale training. Empty `sizes`: single-scale.

    MS-PIE (Xu et al. Sec. 3.5): canvas sizes drawn with `probs` per iteration, reals resized to
    that size, D with adaptive pooling. Random resizing (Choi et al. Sec. 4.2):
    `resize_to_discriminator=true`, the generated image is resized to D's resolution.
    `grid`: "expand" renders a larger canvas at the same pixel spacing, "interp" the same
    extent more densely (zoom).
    """

    sizes: tuple[int, ...] = ()
    probs: tuple[float, ...] | None = None  # None: uniform
    grid: Literal["expand", "interp"] = "expand"
    resize_to_discriminator: bool = False

    def validate(self) -> None:
        if any(s < 8 for s in self.sizes):
            raise ValueError(f"multiscale sizes must be >= 8, got {list(self.sizes)}")
        if self.probs is not None:
            if len(self.probs) != len(self.sizes):
                raise ValueError(f"multiscale.probs has {len(self.probs)} values for {len(self.sizes)} sizes")
            if any(p < 0 for p in self.probs) or not math.isclose(sum(self.probs), 1.0, abs_tol=1e-6):
                raise ValueError(f"multiscale.probs must be non-negative and sum to 1, got {list(self.probs)}")


@dataclass
class AugmentConfig:
    """Adaptive discriminator augmentation (`posgen.training.augment.Augment`, StyleGAN2-ADA): what
    it draws and how its controller moves p. A multiplier scales the probability with which its
    transform is applied (prob = min(1, multiplier x p)); 0 turns it off."""

    enabled: bool = False            # off: D sees the images as they are (every run before ADA)

    # geometric group (probability min(p, geometric_p_max) x multiplier)
    xflip: float = 0.0               # off by default: a mirrored digit is no digit, and the flip moves
                                     # a top-left bias to the top right (1 for mirror-symmetric data)
    translate: float = 1.0           # integer translation
    scale: float = 1.0               # isotropic scaling
    rotate: float = 1.0              # arbitrary rotation about the image centre
    # colour group (probability p x multiplier)
    brightness: float = 1.0
    contrast: float = 1.0
    hue: float = 1.0                 # hue rotation (RGB images only)
    saturation: float = 1.0          # (RGB images only)
    # cutout (probability p x multiplier)
    cutout: float = 1.0
    # strengths (App. B)
    translate_max: float = 0.125     # of the image width / height
    scale_std: float = 0.2           # log2 of the scale factor ~ N(0, scale_std^2)
    rotate_max: float = 1.0          # angle ~ U(-rotate_max, rotate_max) x pi
    brightness_std: float = 0.2
    contrast_std: float = 0.5        # log2
    hue_max: float = 1.0             # x pi
    saturation_std: float = 1.0      # log2
    cutout_size: float = 0.5         # side of the square, fraction of the image
    padding: Literal["reflection", "constant"] = "reflection"  # what geometric transforms reveal
    fill: float = -1.0               # the value revealed with padding="constant" (-1: black)
    # controller (Sec. 3)
    target: float = 0.6              # r_t the controller steers to
    speed_kimg: float = 500.0        # p can go 0 -> 1 in this many thousand images
    p_max: float = 0.8               # p never exceeds this (Sec. 2.3: leaks above about 0.8)
    geometric_p_max: float = 0.6     # geometric transforms run with probability <= this
    fixed_p: float | None = None     # a constant p (used as given, p_max aside): the controller only records r_t

    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if number and f.name != "fill" and (not math.isfinite(v) or v < 0):
                raise ConfigError(f"augment.{f.name} must be a finite number >= 0, got {v}")
        for name in ("p_max", "geometric_p_max", "target", "cutout_size"):
            if getattr(self, name) > 1:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.speed_kimg <= 0:
            raise ConfigError(f"augment.speed_kimg must be > 0, got {self.speed_kimg}")
        if self.fixed_p is not None and not 0 <= self.fixed_p <= 1:
            raise ConfigError(f"augment.fixed_p must be in [0, 1] or None, got {self.fixed_p}")
        if self.padding not in ("reflection", "constant"):
            raise ConfigError(f"augment.padding must be 'reflection' or 'constant', got {self.padding!r}")


@dataclass
class TrainConfig:
    """What the generic training driver (`posgen.training.loop.train`) reads; every family's
    training config subclasses it and adds its own settings."""

    batch_size: int = 32
    kimg: float = 6400.0           # training length in thousands of real images
    snapshot_kimg: float = 50.0    # checkpoint + sample grid interval
    first_snapshot_seconds: float = 60.0  # a checkpoint this long after (re)starting, if no snapshot came first
    log_kimg: float = 1.0          # stats.jsonl: one line (means since the last) per this many kimg
    sample_seeds: int = 32         # seeds in each sample grid
    fid_samples: int = 0           # > 0: FID of every snapshot on this many samples (fid.jsonl), the best one
                                   # kept as best.safetensors (posgen.training.best); 0: off
    threads: int = 0               # torch CPU threads (0: leave torch's default)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast of the forward passes; fp16 adds a
                                   # GradScaler and clamps conv outputs to +-256 (StyleGAN2's conv_clamp)
    channels_last: bool = False    # NHWC memory layout for the networks and images (GPU tensor cores)
    compile: bool = False          # torch.compile the generator's forward pass

    def validate(self) -> None:
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"train.precision must be 'fp32', 'bf16' or 'fp16', got {self.precision!r}")
        if not 1 <= self.batch_size <= MAX_BATCH or not 0 < self.kimg <= MAX_KIMG:
            raise ValueError(f"train.batch_size must be in [1, {MAX_BATCH}] and train.kimg in (0, {MAX_KIMG:g}]")
        if not self.snapshot_kimg > 0 or not self.log_kimg > 0:
            raise ValueError("train.snapshot_kimg and train.log_kimg must be positive")
        if not 0 <= self.first_snapshot_seconds < math.inf:
            raise ValueError(f"train.first_snapshot_seconds must be a finite number >= 0, got {self.first_snapshot_seconds}")
        if self.sample_seeds < 1 or self.threads < 0:
            raise ValueError("train.sample_seeds must be positive and train.threads >= 0")
        if self.fid_samples != 0 and not MIN_FID_SAMPLES <= self.fid_samples <= MAX_FID_SAMPLES:
            raise ValueError(f"train.fid_samples must be 0 (off) or in [{MIN_FID_SAMPLES}, {MAX_FID_SAMPLES}], "
                             f"got {self.fid_samples}")

    def check_run(self, run) -> None:
        """Checks across sections of the run config (`posgen.config.RunConfig`); none by default."""

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.kimg * 1000 / self.batch_size))

    @property
    def snapshot_steps(self) -> int:
        return max(1, round(self.snapshot_kimg * 1000 / self.batch_size))

    @property
    def log_steps(self) -> int:
        return max(1, round(self.log_kimg * 1000 / self.batch_size))


@dataclass
class GANTrainConfig(TrainConfig):
    """The GAN trainer (`posgen.training.gan.GANTrainer`): StyleGAN2's recipe, reference values
    from DESIGN.md as defaults."""

    lr: float = 2e-3               # G and D
    d_lr_multiplier: float = 1.0   # D's learning rate is lr times this (two time-scale update rule, Heusel et al. 2017)
    class_weight: float = 0.0      # class-conditional runs: weight of D's auxiliary classifier loss (AC-GAN); 0: off
    class_confidence: float = 1.0  # G's AC term stops once D's classifier gives the asked class this probability; 1: plain AC-GAN
    class_groups: bool = False     # class-conditional runs: each minibatch-stddev group of D holds one class (reals and fakes)
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 10.0
    r1_interval: int = 16          # lazy R1 every this many D steps
    ema_kimg: float = 10.0         # EMA half-life in thousands of images
    ema_rampup: float | None = 0.05  # half-life limited to this fraction of images seen (short runs)
    style_mixing: float = 0.9
    diversity: float = 0.0         # weight of the mode-seeking term (Mao et al. 2019) on the HSV value of G's images; 0: off
    latent_codes: int = 0          # InfoGAN (Chen et al. 2016): this many coordinates of z that a network Q must read back
                                   # from the shape of G's images (training/codes.py); 0: off
    code_weight: float = 1.0       # weight of InfoGAN's term (G and Q minimise it together)
    nearest_weight: float = 0.0    # IMLE (Li & Malik 2018): each real pulls the nearest of G's samples (same class) to it,
                                   # compared by glyph shape (training/codes.py); weight of that squared error; 0: off
    nearest_candidates: int = 8    # G's samples drawn per real to find the nearest one
    nearest_interval: int = 4      # lazy, as R1: the pull every this many G steps, its weight times this
    xflip: bool = True
    w_avg_beta: float = 0.995      # tracking of the mean w for truncation
    blur_sigma: float = 0.0        # StyleGAN3: Gaussian blur of D's inputs, sigma in pixels at the start ...
    blur_fade_kimg: float = 200.0  # ... fading linearly to 0 over this many kimg
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    multiscale: MultiScaleConfig = field(default_factory=MultiScaleConfig)

    def validate(self) -> None:
        super().validate()
        if self.class_weight < 0:
            raise ValueError(f"train.class_weight must be >= 0, got {self.class_weight}")
        if not 0 < self.class_confidence <= 1:
            raise ValueError(f"train.class_confidence must be in (0, 1], got {self.class_confidence}")
        if not self.lr > 0 or not self.d_lr_multiplier > 0 or self.r1_interval < 1:
            raise ValueError("train.lr, train.d_lr_multiplier and train.r1_interval must be positive")
        if not self.r1_gamma >= 0 or not self.blur_sigma >= 0 or not self.blur_fade_kimg > 0:
            raise ValueError("train.r1_gamma and train.blur_sigma must be >= 0 and train.blur_fade_kimg positive")
        if not 0 <= self.diversity < math.inf:
            raise ValueError(f"train.diversity must be >= 0, got {self.diversity}")
        if not 0 <= self.style_mixing <= 1:
            raise ValueError(f"train.style_mixing must be a probability, got {self.style_mixing}")
        if self.latent_codes < 0 or not 0 <= self.code_weight < math.inf:
            raise ValueError(f"train.latent_codes and train.code_weight must be >= 0, got {self.latent_codes} "
                             f"and {self.code_weight}")
        if not 0 <= self.nearest_weight < math.inf or self.nearest_candidates < 1 or self.nearest_interval < 1:
            raise ValueError(f"train.nearest_weight must be >= 0, train.nearest_candidates and train.nearest_interval "
                             f">= 1, got {self.nearest_weight}, {self.nearest_candidates} and {self.nearest_interval}")
        self.augment.validate()
        self.multiscale.validate()

    def check_run(self, run) -> None:
        if run.discriminator is None:
            raise ValueError("a GAN run needs a discriminator section")
        if run.discriminator.resolution != run.model.resolution:
            raise ValueError(f"discriminator.resolution ({run.discriminator.resolution}) must equal "
                             f"model.resolution ({run.model.resolution})")
        g_classes, d_classes = getattr(run.model, "num_classes", None), run.discriminator.num_classes
        if d_classes and g_classes is None:
            raise ValueError(f"discriminator.num_classes needs a generator with a mapping network; "
                             f"this is a {run.family} model")
        if (g_classes or 0) != d_classes:
            raise ValueError(f"model.num_classes ({g_classes}) and discriminator.num_classes ({d_classes}) must agree")
        if self.class_weight and not d_classes:
            raise ValueError("train.class_weight needs a class-conditional run (model and discriminator num_classes)")
        pack = getattr(run.discriminator, "pack", 1)
        if self.class_groups and (not d_classes or pack > 1):
            raise ValueError("train.class_groups needs a class-conditional run with a single-image D "
                             "(discriminator.pack 1; packs hold one class already)")
        z_dim = getattr(run.model, "z_dim", 0)
        if self.latent_codes and self.latent_codes + (1 if d_classes else 0) > z_dim:
            raise ValueError(f"train.latent_codes ({self.latent_codes}) must leave room in z (z_dim {z_dim}"
                             f"{', one coordinate carries the class' if d_classes else ''})")
        if self.batch_size % pack:
            raise ValueError(f"train.batch_size ({self.batch_size}) must be a multiple of discriminator.pack ({pack})")
        ms = self.multiscale
        if ms.sizes and not ms.resize_to_discriminator and not run.discriminator.adaptive_pool:
            raise ValueError("multi-scale training without resize_to_discriminator needs discriminator.adaptive_pool=true")


@dataclass
class DDPMTrainConfig(TrainConfig):
    """The DDPM trainer (`posgen.training.ddpm.DDPMTrainer`): L_simple (Ho et al. Eq. 14) with Adam
    betas (0, 0.99) as Choi et al. (App. C.3), Ho et al.'s learning-rate warmup, gradient clipping
    at norm 1 and an EMA of the weights."""

    lr: float = 2e-4                      # Ho et al.
    betas: tuple[float, float] = (0.0, 0.99)  # Choi et al. App. C.3
    warmup_kimg: float = 80.0             # linear lr warmup (Ho: 5000 steps)
    grad_clip: float = 1.0                # max gradient norm (0: off)
    ema_kimg: float = 10.0                # EMA half-life in thousands of images
    ema_rampup: float | None = 0.05       # half-life limited to this fraction of images seen (short runs)
    xflip: bool = False                   # Choi et al.: no augmentation
    sample_sampler: Literal["ddpm", "ddim"] = "ddpm"  # snapshot sheets: ancestral sampling (early in training
    sample_steps: int = 100               # it gives cleaner images than DDIM), respaced to this many steps

    def validate(self) -> None:
        super().validate()
        if not self.lr > 0 or self.warmup_kimg < 0 or self.grad_clip < 0 or not self.ema_kimg > 0:
            raise ValueError("train.lr and train.ema_kimg must be positive, warmup_kimg and grad_clip >= 0")
        if self.sample_steps < 1:
            raise ValueError("train.sample_steps must be positive")

    def check_run(self, run) -> None:
        if run.discriminator is not None:
            raise ValueError("a DDPM run has no discriminator section")
