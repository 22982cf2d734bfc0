"""Named run configurations: small CPU-trainable digits presets and full-size FFHQ-256 ones.

Each preset is a small factory; `PRESETS` maps name -> (one-line summary, factory).
Digits presets train on the embedded biased digits (32x32 canvas, digits in the top-left
16x16 quarter) and reach recognisable digits in minutes on a laptop CPU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from posgen.training.config import GANTrainConfig, MultiScaleConfig

if TYPE_CHECKING:
    from posgen.config import RunConfig

# Model, data and run config classes are imported inside the factories below: listing presets
# (`posgen presets`) then needs no torch.
DIGITS_RES, DIGITS_BASE, DIGITS_CMAX = 32, 1024, 64
# The StyleGAN2 digits recipe (docs/recipe.md): class-conditional G and D (the digits are labelled; the class
# rides in z, ops/mapping.py) with D's auxiliary classifier (AC-GAN, weight 1), single-image D, no style mixing.
# digits-baseline at 130 kimg: FID 31.8, all ten classes (entropy 0.999), against 59-66 and 7 classes for the
# unconditional recipe (PacGAN packing by 4, which this replaces: a packed D does not learn the classes)
DIGITS_CLASSES = 10
DIGITS_CLASS_WEIGHT = 1.0
# G's AC term hinged at probability 0.5 of the asked class (train.class_confidence): 150 kimg of digits-baseline
# gave FID 27.3 / recall 0.015 / 9 classes against the plain AC term's 31.8 / 0.003 / 10 (docs/recipe.md)
DIGITS_CLASS_CONFIDENCE = 0.5
# No style mixing in the StyleGAN2 digits presets (docs/recipe.md, r1): at 32x32 every layer draws part of
# the glyph, so a mixed image is rarely a digit; without mixing the packed baseline at 66 kimg went from FID
# 74.9 / recall 0.094 / 4 classes to 61.5 / 0.254 / 7 with seed 0 (seed 1: 79.5 / 0.044 / 5, so the gain is
# within the seed spread); StyleGAN2-ADA turns mixing off at CIFAR's size too
DIGITS_STYLE_MIXING = 0.0
# IMLE's nearest-sample pull (train.nearest_weight, Li & Malik 2018) at weight 8: digits-baseline in 38 minutes on
# one thread (87 kimg) went from FID 27.3 / recall 0.015 / 9 classes / agreement 0.93 (the hinge alone, 150 kimg)
# to 8.8 / 0.152 / 10 / 0.98; weights 0.5 and 2 gave 65.8 and 32.5 (docs/recipe.md, tenth session)
DIGITS_NEAREST_WEIGHT = 8.0
# what the conditional digits presets (StyleGAN2 and CIPS) pass to _digits_run
DIGITS_RECIPE = dict(classes=DIGITS_CLASSES, class_weight=DIGITS_CLASS_WEIGHT, class_confidence=DIGITS_CLASS_CONFIDENCE,
                     nearest_weight=DIGITS_NEAREST_WEIGHT)


def _digits_run(name: str, description: str, model: Any, *, adaptive_pool: bool = False,
                multiscale: MultiScaleConfig | None = None, style_mixing: float = 0.9, classes: int = 0,
                class_weight: float = 0.0, class_confidence: float = 1.0, nearest_weight: float = 0.0) -> RunConfig:
    from posgen.config import RunConfig
    from posgen.data import BiasedDigitsConfig, DataConfig
    from posgen.models.discriminator import DiscriminatorConfig

    return RunConfig(
        family=_family(model),
        name=name,
        description=description,
        model=model,
        discriminator=DiscriminatorConfig(resolution=DIGITS_RES, channel_base=DIGITS_BASE, channel_max=DIGITS_CMAX,
                                          adaptive_pool=adaptive_pool, num_classes=classes),
        train=GANTrainConfig(batch_size=16, kimg=300, r1_gamma=0.1, ema_kimg=5, style_mixing=style_mixing, xflip=False,
                          snapshot_kimg=10, multiscale=multiscale or MultiScaleConfig(), class_weight=class_weight,
                          class_confidence=class_confidence, nearest_weight=nearest_weight),
        # random hues, 4 coloured copies of each digit, 2 px jitter inside the corner: more variety
        # for D than 1,797 images in six colours, which it memorises quickly
        data=DataConfig(source="digits", digits=BiasedDigitsConfig(colors=None, copies=4, jitter=2)),
    )


def _family(model: Any) -> str:
    from posgen.families import FAMILIES

    return next(name for name, f in FAMILIES.items() if type(model) is f.model_config)


def _digits(name: str, description: str, *, adaptive_pool: bool = False,
            multiscale: MultiScaleConfig | None = None, **model) -> RunConfig:
    from posgen.models.stylegan2 import StyleGAN2Config

    return _digits_run(name, description,
                       StyleGAN2Config(resolution=DIGITS_RES, z_dim=128, w_dim=128, mapping_layers=4,
                                       channel_base=DIGITS_BASE, channel_max=DIGITS_CMAX, num_classes=DIGITS_CLASSES,
                                       **model),
                       adaptive_pool=adaptive_pool, multiscale=multiscale, style_mixing=DIGITS_STYLE_MIXING,
                       **DIGITS_RECIPE)


def _digits_cips(name: str, description: str, **model) -> RunConfig:
    # 8 ModFC layers of width 48 (4 pairs, each with a to-RGB), 64 Fourier + 64 embedding channels:
    # the training speed of digits-mspe on one CPU thread (benchmarks/train_step.py: 73 vs 76 img/s;
    # width 64 gives 55). Anokhin et al. train without style mixing (App. D, Fig. 19). The StyleGAN2 digits
    # recipe (class-conditional, hinged AC term, the pull): unconditional with the pull (n8, 65 kimg) CIPS
    # reached FID 38.5 / 9 classes against the packed recipe's 46.2 / 9 at 120 kimg; with the whole recipe
    # 10.0 / 10 classes at 66 kimg in 36 minutes (docs/recipe.md, twelfth session)
    from posgen.models.cips import CIPSConfig

    return _digits_run(name, description,
                       CIPSConfig(resolution=DIGITS_RES, z_dim=128, w_dim=128, mapping_layers=4, width=48,
                                  num_layers=8, fourier_channels=64, embedding_channels=64,
                                  num_classes=DIGITS_CLASSES, **model),
                       style_mixing=0.0, **DIGITS_RECIPE)


def _panorama_cips() -> RunConfig:
    # Anokhin et al. Sec. 4.8 at CPU size: 32x32 crops of a 128-pixel cylinder (4 crops around) against
    # 32x32 patches of scikit-learn's bundled china.jpg scaled to 48 rows; no panorama is ever shown.
    from posgen.config import RunConfig
    from posgen.data import DataConfig
    from posgen.models.cips import CIPSConfig
    from posgen.models.discriminator import DiscriminatorConfig

    return RunConfig(
        family="cips",
        name="panorama-cips",
        description="CIPS cylindrical panorama from patches of one landscape photograph",
        model=CIPSConfig(resolution=DIGITS_RES, z_dim=128, w_dim=128, mapping_layers=4, width=48, num_layers=8,
                         fourier_channels=64, embedding_channels=64, circumference=128),
        discriminator=DiscriminatorConfig(resolution=DIGITS_RES, channel_base=DIGITS_BASE, channel_max=DIGITS_CMAX),
        train=GANTrainConfig(batch_size=16, kimg=150, r1_gamma=0.1, ema_kimg=5, style_mixing=0.0, xflip=True,
                          snapshot_kimg=10),
        data=DataConfig(source="sample:china.jpg", patch_height=48),
    )


def _ffhq256_run(name: str, description: str, model: Any, *, adaptive_pool: bool = False,
                 multiscale: MultiScaleConfig | None = None, **train) -> RunConfig:
    from posgen.config import RunConfig
    from posgen.data import DataConfig
    from posgen.models.discriminator import DiscriminatorConfig

    train = {"batch_size": 32, "kimg": 6400, "r1_gamma": 10, "xflip": True, "snapshot_kimg": 200, **train}
    return RunConfig(
        family=_family(model),
        name=name,
        description=description,
        model=model,
        discriminator=DiscriminatorConfig(resolution=256, adaptive_pool=adaptive_pool),
        train=GANTrainConfig(multiscale=multiscale or MultiScaleConfig(), **train),
        data=DataConfig(source="ffhq256.zip"),
    )


def _ffhq256(name: str, description: str, *, adaptive_pool: bool = False,
             multiscale: MultiScaleConfig | None = None, **model) -> RunConfig:
    from posgen.models.stylegan2 import StyleGAN2Config

    return _ffhq256_run(name, description, StyleGAN2Config(resolution=256, **model), adaptive_pool=adaptive_pool,
                        multiscale=multiscale)


def _ffhq256_cips() -> RunConfig:
    # Anokhin et al. Sec. 4.1: 14 ModFC layers of width 512, 512 Fourier + 512 embedding channels,
    # Adam lr 2e-3, betas (0, 0.99), R1, no style mixing; their ablations ran 300k iterations at batch 16
    from posgen.models.cips import CIPSConfig

    return _ffhq256_run("ffhq256-cips", "CIPS, FFHQ 256", CIPSConfig(resolution=256), batch_size=16, kimg=4800,
                        style_mixing=0.0)


def _digits_sg3(name: str, description: str, equivariance: str) -> RunConfig:
    # StyleGAN3 at the digits size (benchmarks/sg3.py): 8 layers instead of 14 and an 8-sample margin instead
    # of 10 keep a CPU step affordable (EQ-T at initialisation, 48 samples: margin 4: 27 dB, 6: 38, 8: 51,
    # 10: 69 at 2x the cost of 8: zero padding's garbage creeps in from the lattice border); channels as digits-baseline for T and for R (the paper doubles R's
    # channels, which makes its CPU step 2x dearer: --set model.channel_base=2048 model.channel_max=128).
    # No style mixing (Sec. 3.1); D's inputs blurred, sigma 2 px (the paper's 10 px at 256-1024 scaled to
    # 32 px) fading to 0 over 10 kimg (a 25-minute CPU run sees about 15 kimg).
    from posgen.models.stylegan3 import StyleGAN3Config

    run = _digits_run(name, description,
                      StyleGAN3Config(resolution=DIGITS_RES, z_dim=128, w_dim=128, mapping_layers=2,
                                      channel_base=DIGITS_BASE, channel_max=DIGITS_CMAX, num_layers=8, margin=8,
                                      equivariance=equivariance), style_mixing=0.0)
    run.train.blur_sigma, run.train.blur_fade_kimg = 2.0, 10.0
    return run


def _ffhq256_sg3(name: str, description: str, equivariance: str) -> RunConfig:
    # Karras et al. 2021 at 256 (their FFHQ-U 256 ablations, Fig. 3 / 5): 14 layers, n = 6, m = 2, margin 10;
    # T: channel base 16384 / max 512, R: 32768 / 1024 with 1x1 convs. These give exactly the 23.3M (T) and
    # 15.8M (R) generator parameters of their G-CNN comparison table (tests/test_stylegan3.py). Batch 32, no
    # mixing, no path length; D-input blur sigma 10 px fading over 200 kimg. R1 gamma 2: our reading of
    # NVlabs' recommendations for 256x256 faces (their 1024 FFHQ setting is 8.2), not checked against a run.
    from posgen.models.stylegan3 import StyleGAN3Config

    wide = equivariance == "rotation"
    model = StyleGAN3Config(resolution=256, channel_base=16384 * (2 if wide else 1), channel_max=512 * (2 if wide else 1),
                            equivariance=equivariance)
    run = _ffhq256_run(name, description, model, style_mixing=0.0, r1_gamma=2.0, ema_kimg=10.0)
    run.train.blur_sigma, run.train.blur_fade_kimg = 10.0, 200.0
    return run


def _digits_dcgan(name: str, description: str, **model) -> RunConfig:
    # Xu Tab. 4's DCGAN (upsample + 3x3 conv blocks, linear input) at the digits size: 64 channels, z 100
    from posgen.models.dcgan import DCGANConfig

    return _digits_run(name, description, DCGANConfig(resolution=DIGITS_RES, z_dim=100, channel_base=DIGITS_BASE,
                                                      channel_max=DIGITS_CMAX, **model), style_mixing=0.0)


def _singan(name: str, description: str, *, full: bool = False, **model) -> RunConfig:
    # SinGAN on scikit-learn's bundled china.jpg (427x640). CPU: longer side 128 (86x128, 6 scales), 32 channels
    # at every scale, 400 iterations per scale: about 15 minutes on one thread (README benchmarks). Full size:
    # the official 250 px, channels 32 doubling every 4 scales up to 128, 2000 iterations per scale (GPU).
    from posgen.config import RunConfig
    from posgen.data import DataConfig
    from posgen.models.singan import SinGANConfig
    from posgen.training.singan import SinGANTrainConfig

    size = dict(max_size=250, max_channels=128) if full else dict(max_size=128, max_channels=32)
    train = dict(iters_per_scale=2000, snapshot_kimg=2.0) if full else dict(iters_per_scale=400, snapshot_kimg=0.4,
                                                                            threads=1)
    return RunConfig(family="singan", name=name, description=description, model=SinGANConfig(**size, **model),
                     train=SinGANTrainConfig(**train), data=DataConfig(source="sample:china.jpg"))


DCGAN_VARIANTS = {  # name suffix -> (summary, model settings)
    "": ("DCGAN with zero padding (Xu Tab. 4a)", {}),
    "-nopad": ("DCGAN without padding (Xu Tab. 4b)", dict(padding="none")),
    "-nopad-spe": ("DCGAN without padding, SPE added to the 4x4 input map (Xu Tab. 4c)",
                   dict(padding="none", encoding="sinusoid")),
    "-nopad-csg": ("DCGAN without padding, Cartesian grid concatenated to the 4x4 input map",
                   dict(padding="none", encoding="cartesian")),
}
PGGAN_VARIANTS = {  # name suffix -> (summary, model settings): Xu Tab. 3 at a fixed resolution (no growing)
    "": ("PGGAN generator (fixed resolution) with zero padding (Xu Tab. 3a)", {}),
    "-nopad": ("PGGAN generator without padding (Xu Tab. 3b)", dict(padding="none")),
    "-nopad-spe": ("PGGAN generator without padding, SPE added to the 4x4 map (Xu Tab. 3c)",
                   dict(padding="none", encoding="sinusoid")),
}
SINGAN_VARIANTS = {  # name suffix -> (summary, model settings)
    "pad": ("official padding (one zero pad of 5 px at each scale's input)", dict(padding="input")),
    "nopad": ("padding-free (valid convs on margin-widened lattices; Xu Fig. 1b)", dict(padding="none")),
    "csg": ("padding-free + Cartesian grid added to the coarsest noise, anchors at the canvas corners (Xu Fig. 7b)",
            dict(padding="none", encoding="cartesian", encoding_canvas="interp")),
    "spe": ("padding-free + sinusoid (Eq. 8) added to the coarsest noise (Xu Fig. 7c)",
            dict(padding="none", encoding="sinusoid")),
}


def _ddpm(name: str, description: str, *, paper: bool = False, **model) -> RunConfig:
    # DDPM on the biased digits (Choi Sec. 4.5: colour digits in the top-left). CPU (32x32): widths 32/64/64,
    # one residual block per level, attention at 8x8; about 0.3 s per batch-16 step on one thread, so
    # --minutes 20 sees ~60 kimg; lr 5e-4 with a short warmup for such runs. Paper (GPU, 64x64): four
    # resolutions 64..8, attention at 8x8 (Choi App. C.2), Ho et al.'s width 128 and two blocks per level,
    # dropout 0.1, batch 16, 9.6M images, Adam (0, 0.99) at Ho's lr 2e-4 (Choi App. C.3).
    from posgen.config import RunConfig
    from posgen.data import BiasedDigitsConfig, DataConfig
    from posgen.models.unet import UNetConfig
    from posgen.training.config import DDPMTrainConfig

    if paper:
        net = UNetConfig(resolution=64, channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, dropout=0.1, **model)
        train = DDPMTrainConfig(batch_size=16, kimg=9600, snapshot_kimg=200, warmup_kimg=80, ema_kimg=500)
        digits = BiasedDigitsConfig(canvas=(64, 64), region=(0, 0, 32, 32), colors=None, copies=4, jitter=4)
    else:
        net = UNetConfig(resolution=DIGITS_RES, channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8,
                         **model)
        train = DDPMTrainConfig(batch_size=16, kimg=100, snapshot_kimg=10, lr=5e-4, warmup_kimg=1, ema_kimg=2)
        digits = BiasedDigitsConfig(colors=None, copies=4, jitter=2)
    return RunConfig(family="ddpm", name=name, description=description, model=net, train=train,
                     data=DataConfig(source="digits", digits=digits))


SPE = dict(input="sinusoid")
MSPE = dict(input="sinusoid", scale_encoding="sinusoid")
# The digits MS-PE presets start the per-scale gamma at 0.1 instead of 1 (docs/recipe.md, i3): at 1 the
# sinusoids at every scale swamp the class-conditional styles early; 143 kimg of digits-mspe gave FID 52.3 /
# 9 classes / class agreement 0.84 against gamma 1's 76.2 / 7 / 0.67. gamma stays learnable (Choi Eq. 3-5).
DIGITS_MSPE = dict(MSPE, gamma_init=0.1)
MSPIE = MultiScaleConfig(sizes=(32, 48, 64), probs=(0.5, 0.25, 0.25), grid="expand")
# Choi Sec. 4.2 draws 256..512 per iteration and resizes G's image to 256 for D: the digits' 1x..2x
MSPE_RESIZE = MultiScaleConfig(sizes=(32, 40, 48, 56, 64), grid="interp", resize_to_discriminator=True)
MSPIE_INTERP = MultiScaleConfig(sizes=(32, 48, 64), probs=(0.5, 0.25, 0.25), grid="interp")

PRESETS: dict[str, tuple[str, Callable[[], RunConfig]]] = {
    "digits-baseline": ("StyleGAN2 baseline (learned constant, zero padding) on biased digits, 32x32",
                        lambda: _digits("digits-baseline", "StyleGAN2 baseline on biased digits")),
    "digits-sspe": ("SS-PE: sinusoid replaces the constant (Choi Eq. 4) on biased digits, 32x32",
                    lambda: _digits("digits-sspe", "SS-PE on biased digits", **SPE)),
    "digits-mspe": ("MS-PE: sinusoid at every scale with learnable gamma (Choi Eq. 3-5), 32x32",
                    lambda: _digits("digits-mspe", "MS-PE on biased digits", **DIGITS_MSPE)),
    "digits-mspe-resize": ("MS-PE with random resizing (Choi Sec. 4.2, Fig. 6d): canvases 32..64 zoomed, resized to "
                           "D's 32x32", lambda: _digits("digits-mspe-resize", "MS-PE + random resizing on biased digits",
                                                         multiscale=MSPE_RESIZE, **DIGITS_MSPE)),
    "digits-nopad": ("Padding-free baseline: learned constant input, no zero padding (Xu Tab. 2c), 32x32",
                     lambda: _digits("digits-nopad", "padding-free constant-input StyleGAN2 on biased digits",
                                     padding="none")),
    "digits-sspe-nopad": ("SPE at the input, padding-free (Xu Tab. 2e), 32x32",
                          lambda: _digits("digits-sspe-nopad", "padding-free SPE-input StyleGAN2 on biased digits",
                                          padding="none", **SPE)),
    "digits-mspe-nopad": ("MS-PE, padding-free (valid convs on margin-extended lattices), 32x32",
                          lambda: _digits("digits-mspe-nopad", "padding-free MS-PE on biased digits",
                                          padding="none", **DIGITS_MSPE)),
    "digits-csg-nopad": ("Cartesian grid input (Xu Eq. 6), padding-free, 32x32",
                         lambda: _digits("digits-csg-nopad", "padding-free CSG on biased digits",
                                         input="cartesian", padding="none")),
    "digits-mspie": ("MS-PIE (Xu 3.5): SPE-expand input, canvases 32/48/64 with p=0.5/0.25/0.25, D adaptive pool",
                     lambda: _digits("digits-mspie", "MS-PIE (SPE-expand) on biased digits", adaptive_pool=True,
                                     multiscale=MSPIE, **SPE)),
    "digits-mspie-spe-interp": ("MS-PIE with SPE-interp: larger canvases sample the same SPE extent densely (Xu Tab. 5e)",
                                lambda: _digits("digits-mspie-spe-interp", "MS-PIE (SPE-interp) on biased digits",
                                                adaptive_pool=True, multiscale=MSPIE_INTERP, **SPE)),
    "digits-mspie-csg": ("MS-PIE with the Cartesian grid input, interp (Xu Tab. 5d)",
                         lambda: _digits("digits-mspie-csg", "MS-PIE (CSG) on biased digits", adaptive_pool=True,
                                         multiscale=MSPIE_INTERP, input="cartesian")),
    "digits-mspie-const": ("MS-PIE with the learned constant, interpolated at larger canvases (Xu Tab. 5c)",
                           lambda: _digits("digits-mspie-const", "MS-PIE (constant) on biased digits",
                                           adaptive_pool=True, multiscale=MSPIE_INTERP)),
    "ffhq256-baseline": ("StyleGAN2 config-F-like baseline at 256x256 (GPU)",
                         lambda: _ffhq256("ffhq256-baseline", "StyleGAN2 baseline, FFHQ 256")),
    "ffhq256-mspe": ("MS-PE StyleGAN2 at 256x256 as in Choi et al. (GPU)",
                     lambda: _ffhq256("ffhq256-mspe", "MS-PE StyleGAN2, FFHQ 256", **MSPE)),
    "ffhq256-mspe-resize": ("MS-PE with Choi's random resizing: 256..512 drawn uniformly, resized to D (GPU)",
                            lambda: _ffhq256("ffhq256-mspe-resize", "MS-PE + random resizing, FFHQ 256",
                                             multiscale=MultiScaleConfig(sizes=(256, 320, 384, 448, 512), grid="interp",
                                                                         resize_to_discriminator=True), **MSPE)),
    "ffhq256-mspie": ("MS-PIE: SPE-expand input, canvases 256/384/512 with p=0.5/0.25/0.25 (GPU)",
                      lambda: _ffhq256("ffhq256-mspie", "MS-PIE StyleGAN2, FFHQ 256", adaptive_pool=True,
                                       multiscale=MultiScaleConfig(sizes=(256, 384, 512), probs=(0.5, 0.25, 0.25)),
                                       **SPE)),
    "digits-cips": ("CIPS (Anokhin et al.): per-pixel ModFC MLP on Fourier features + coordinate embeddings, 32x32",
                    lambda: _digits_cips("digits-cips", "CIPS on biased digits")),
    "digits-cips-ne": ("CIPS-NE: CIPS without coordinate embeddings, Fourier features only (Anokhin Tab. 3), 32x32",
                       lambda: _digits_cips("digits-cips-ne", "CIPS-NE (no coordinate embeddings) on biased digits",
                                            embedding=False)),
    "digits-cips-nofourier": ("CIPS without Fourier features, coordinate embeddings only (Anokhin Tab. 3), 32x32",
                              lambda: _digits_cips("digits-cips-nofourier",
                                                   "CIPS without Fourier features on biased digits", fourier=False)),
    "panorama-cips": ("CIPS on a 128-pixel cylinder trained on 32x32 crops of a bundled photo: seamless 360-degree "
                      "strips (Anokhin Sec. 4.8)", _panorama_cips),
    "ffhq256-cips": ("CIPS at 256x256 as in Anokhin et al.: 14 ModFC layers of width 512, batch 16 (GPU)",
                     _ffhq256_cips),
    "digits-sg3t": ("StyleGAN3-T (alias-free, translation-equivariant), 8 layers, 32x32 (CPU)",
                    lambda: _digits_sg3("digits-sg3t", "StyleGAN3-T on biased digits", "translation")),
    "digits-sg3r": ("StyleGAN3-R (1x1 convs, radial filters: rotation-equivariant), 8 layers, 32x32 (CPU)",
                    lambda: _digits_sg3("digits-sg3r", "StyleGAN3-R on biased digits", "rotation")),
    "ffhq256-sg3t": ("StyleGAN3-T at 256x256 with the paper's settings (GPU)",
                     lambda: _ffhq256_sg3("ffhq256-sg3t", "StyleGAN3-T, FFHQ 256", "translation")),
    "ffhq256-sg3r": ("StyleGAN3-R at 256x256 with the paper's settings (GPU)",
                     lambda: _ffhq256_sg3("ffhq256-sg3r", "StyleGAN3-R, FFHQ 256", "rotation")),
    **{f"digits-dcgan{k}": (f"{summary}, 32x32", lambda k=k, summary=summary, m=m: _digits_dcgan(
        f"digits-dcgan{k}", f"{summary} on biased digits", **m)) for k, (summary, m) in DCGAN_VARIANTS.items()},
    **{f"digits-pggan{k}": (f"{summary}, 32x32", lambda k=k, summary=summary, m=m: _digits_dcgan(
        f"digits-pggan{k}", f"{summary} on biased digits", architecture="pggan", **m))
       for k, (summary, m) in PGGAN_VARIANTS.items()},
    **{f"singan-{k}": (f"SinGAN on a bundled photo at 128 px (CPU, ~15 min): {summary}",
                       lambda k=k, summary=summary, m=m: _singan(f"singan-{k}", f"SinGAN, {summary}", **m))
       for k, (summary, m) in SINGAN_VARIANTS.items()},
    **{f"singan250-{k}": (f"SinGAN at the official 250 px, 2000 iterations per scale (GPU): {summary}",
                          lambda k=k, summary=summary, m=m: _singan(f"singan250-{k}", f"SinGAN 250 px, {summary}",
                                                                    full=True, **m))
       for k, (summary, m) in SINGAN_VARIANTS.items()},
    "digits-ddpm": ("DDPM baseline U-Net (zero padding only) on biased digits, 32x32 (CPU, ~20 min)",
                    lambda: _ddpm("digits-ddpm", "DDPM baseline on biased digits")),
    "digits-ddpm-mspe": ("DDPM with MS-PE: sinusoids after each encoder level and upsampling (Choi Sec. 4.5), 32x32",
                         lambda: _ddpm("digits-ddpm-mspe", "DDPM with MS-PE on biased digits",
                                       positional_encoding="sinusoid")),
    "digits64-ddpm": ("DDPM baseline at Choi et al.'s 64x64 on biased digits, batch 16, 9.6M images (GPU)",
                      lambda: _ddpm("digits64-ddpm", "DDPM baseline on biased digits, 64x64", paper=True)),
    "digits64-ddpm-mspe": ("DDPM with MS-PE as in Choi et al. Sec. 4.5 / App. C.2, 64x64 (GPU)",
                           lambda: _ddpm("digits64-ddpm-mspe", "DDPM with MS-PE on biased digits, 64x64",
                                         paper=True, positional_encoding="sinusoid")),
}


def get_preset(name: str) -> RunConfig:
    from posgen.errors import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; `posgen presets` lists them")
    return PRESETS[name][1]()
