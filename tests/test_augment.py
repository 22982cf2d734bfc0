"""Adaptive discriminator augmentation (posgen.training.augment): identity at p = 0, exact
integer translations, colour keeps luma and moves no pixel, cutout only erases, gradients,
determinism, the controller, and the spatial bias of the digits surviving at the cap."""
from __future__ import annotations

import math

import pytest
import torch

from posgen.data.digits import make_biased_digits
from posgen.errors import ConfigError
from posgen.training.augment import Augment, AugmentConfig

NO_COLOUR = dict(brightness=0.0, contrast=0.0, hue=0.0, saturation=0.0, cutout=0.0)
NO_GEOMETRY = dict(xflip=0.0, translate=0.0, scale=0.0, rotate=0.0)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    images, _ = make_biased_digits()  # digits in the top-left 16x16 of 32x32
    return images.float() / 127.5 - 1  # [1797, 3, 32, 32]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _quarters(images: torch.Tensor) -> list[float]:
    """Share of the mean content mass (|pixel - the image's background|, summed over channels)
    in the top-left, top-right, bottom-left, bottom-right quarters."""
    bg = images.flatten(2).median(dim=2).values[:, :, None, None]
    m = (images - bg).abs().sum(1).mean(0)  # [H, W]
    h, w = m.shape
    parts = [m[:h // 2, :w // 2], m[:h // 2, w // 2:], m[h // 2:, :w // 2], m[h // 2:, w // 2:]]
    return [float(q.sum() / m.sum()) for q in parts]


def test_p_zero_is_the_identity(digits):
    x = digits[:16]
    aug = Augment()
    assert float(aug.p) == 0.0
    assert aug(x, _gen()) is x
    off = Augment(AugmentConfig(fixed_p=0.8, **NO_GEOMETRY, **NO_COLOUR))  # every multiplier 0
    assert off(x, _gen()) is x


def test_images_without_a_geometric_draw_stay_bit_exact(digits):
    x = digits[:64]
    y = Augment(AugmentConfig(fixed_p=0.3, **NO_COLOUR))(x, _gen(3))
    same = (y == x).flatten(1).all(1)
    assert 0 < int(same.sum()) < 64  # some untouched (exactly), some moved


def test_integer_translation_is_an_exact_shift(digits):
    x = digits[:32]
    cfg = AugmentConfig(fixed_p=0.6, padding="constant", fill=-1.0, **NO_COLOUR, **{**NO_GEOMETRY, "translate": 1.0})
    y = Augment(cfg)(x, _gen(1))
    big = torch.nn.functional.pad(x, (4, 4, 4, 4), value=-1.0)  # shifts of up to 0.125 x 32 = 4
    moved = 0
    for i in range(len(x)):
        errs = {(dy, dx): (y[i] - big[i, :, 4 - dy:36 - dy, 4 - dx:36 - dx]).abs().max().item()
                for dy in range(-4, 5) for dx in range(-4, 5)}
        (dy, dx), err = min(errs.items(), key=lambda kv: kv[1])
        assert err < 1e-4, (i, dy, dx, err)
        moved += (dy, dx) != (0, 0)
    assert moved > 8


def test_colour_keeps_luma_and_moves_no_pixel(digits):
    x = digits[:16]
    gen_state = _gen(5).get_state()
    hue_sat = Augment(AugmentConfig(fixed_p=0.8, **NO_GEOMETRY, cutout=0.0, brightness=0.0, contrast=0.0))
    y = hue_sat(x, torch.Generator().set_state(gen_state))
    assert not torch.equal(y, x)
    assert torch.allclose(y.mean(1), x.mean(1), atol=1e-5)  # hue rotation and saturation keep luma
    grey = torch.linspace(-1, 1, 16)[:, None, None, None].expand(16, 3, 4, 4)
    assert torch.allclose(hue_sat(grey, _gen(2)), grey, atol=1e-5)  # greys have no hue, no saturation
    colour = Augment(AugmentConfig(fixed_p=0.8, **NO_GEOMETRY, cutout=0.0))
    perm = torch.randperm(32 * 32, generator=_gen(9))
    shuffle = lambda t: t.flatten(2)[:, :, perm].reshape(t.shape)  # noqa: E731
    a = shuffle(colour(x, torch.Generator().set_state(gen_state)))
    b = colour(shuffle(x), torch.Generator().set_state(gen_state))
    assert torch.allclose(a, b, atol=1e-6)  # per-pixel: content stays where it is
    one = colour(x[:, :1], _gen(4))  # one channel: brightness and contrast
    assert one.shape == (16, 1, 32, 32) and not torch.equal(one, x[:, :1])


def test_cutout_only_erases(digits):
    x = digits[:64]
    y = Augment(AugmentConfig(fixed_p=0.8, **NO_GEOMETRY, **{**NO_COLOUR, "cutout": 1.0}))(x, _gen(7))
    erased = (y != x)
    assert torch.all(y[erased] == 0)  # erased pixels become 0, the rest is untouched
    zeroed = (y == 0).all(1).flatten(1).float().mean(1)  # [N] share of the canvas set to 0
    hit = zeroed > 0
    assert 0.6 < hit.float().mean() < 1.0  # applied with p = 0.8
    assert zeroed[hit].max() <= 0.25 + 1e-6  # a square of half the side at most


def test_gradients_flow_to_the_images(digits):
    x = digits[:16].clone().requires_grad_(True)
    y = Augment(AugmentConfig(fixed_p=0.8, xflip=1.0))(x, _gen())
    w = torch.randn(y.shape, generator=_gen(1))
    (y * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    small = (torch.rand(3, 3, 6, 5, dtype=torch.float64, generator=_gen(2)) * 2 - 1).requires_grad_(True)
    aug = Augment(AugmentConfig(fixed_p=0.8, xflip=1.0, padding="constant"))
    assert torch.autograd.gradcheck(lambda t: aug(t, _gen(8)), (small,), atol=1e-6)


def test_deterministic_given_the_generator(digits):
    x = digits[:16]
    aug = Augment(AugmentConfig(fixed_p=0.7, xflip=1.0))
    assert torch.equal(aug(x, _gen(11)), aug(x, _gen(11)))
    assert not torch.equal(aug(x, _gen(11)), aug(x, _gen(12)))
    g = _gen(13)
    aug(x, g)
    state = g.get_state()  # a resume restores the generator's state mid-run
    assert torch.equal(aug(x, g), aug(x, torch.Generator().set_state(state)))


def test_controller_moves_p_towards_the_target():
    aug = Augment(AugmentConfig(target=0.6, speed_kimg=500.0, p_max=0.8))
    assert aug.update(0.9, 4 * 16) == pytest.approx(64 / 500_000)  # overfitting: p rises
    assert aug.update(0.2, 32) == pytest.approx(32 / 500_000)  # D not overfitting: p falls
    assert float(aug.rt) == 0.2 and aug.stats() == {"augment/p": float(aug.p), "augment/rt": 0.2}
    assert aug.update(0.2, 10_000) == 0.0  # clamped at 0
    for _ in range(5):
        aug.update(1.0, 100_000)  # 0 -> 1 would take 500k images
    assert float(aug.p) == pytest.approx(0.8)  # clamped at p_max
    state = aug.state_dict()
    fresh = Augment(AugmentConfig(p_max=0.8))
    fresh.load_state_dict(state)
    assert float(fresh.p) == pytest.approx(0.8)
    fixed = Augment(AugmentConfig(fixed_p=0.3))
    assert fixed.update(1.0, 100_000) == 0.3 and float(fixed.rt) == 1.0
    probs = Augment(AugmentConfig(fixed_p=0.8)).probabilities()
    assert probs["rotate"] == 0.6 and probs["hue"] == 0.8 and probs["xflip"] == 0.0  # geometric capped


def test_bad_config_is_one_line():
    for bad in (dict(p_max=1.5), dict(target=-0.1), dict(rotate=-1), dict(speed_kimg=0.0), dict(fixed_p=2.0), dict(scale=math.nan),
                dict(padding="zeros")):
        with pytest.raises(ConfigError) as e:
            Augment(AugmentConfig(**bad))
        assert "\n" not in str(e.value)


def test_spatial_bias_survives_at_the_cap(digits):
    # geometric transforms are the only ones that move content (colour and cutout act per pixel,
    # tests above); at the default cap most of the mass stays in the data's top-left corner
    assert _quarters(digits)[0] > 0.999
    capped = Augment(AugmentConfig(fixed_p=0.8, **NO_COLOUR))
    assert capped.probabilities()["rotate"] == 0.6
    q = _quarters(capped(digits, _gen(0)))
    assert q[0] > 0.45 and q[0] > 2.5 * max(q[1:]), q
    # constant (black) padding too
    q = _quarters(Augment(AugmentConfig(fixed_p=0.8, padding="constant", **NO_COLOUR))(digits, _gen(0)))
    assert q[0] > 0.45 and q[0] > 2.5 * max(q[1:]), q


def test_full_geometric_augmentation_moves_the_bias_out(digits):
    # the counter-example: every image flipped / translated / scaled / rotated (p = 1, no cap)
    # spreads the corner over the whole canvas, and D could no longer see where digits live
    full = Augment(AugmentConfig(fixed_p=1.0, p_max=1.0, geometric_p_max=1.0, xflip=1.0, **NO_COLOUR))
    q = _quarters(full(digits, _gen(0)))
    assert max(q) < 0.3 and min(q) > 0.2, q


def _blob(n: int, size: int = 32, sigma: float = 3.0) -> torch.Tensor:
    """A gaussian blob at the exact canvas centre (size / 2 in pixel-edge coordinates), on black."""
    t = torch.arange(size, dtype=torch.float32) + 0.5 - size / 2
    g = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma ** 2))
    return (g * 2 - 1).expand(n, 3, size, size).clone()


def _moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: centroid (y, x) in pixel-edge coordinates and mean squared radius of the ink."""
    m = (images[:, 0] + 1) / 2  # [N, H, W]
    t = torch.arange(images.shape[-1], dtype=torch.float32) + 0.5
    total = m.sum((1, 2))
    cy, cx = (m.sum(2) * t).sum(1) / total, (m.sum(1) * t).sum(1) / total
    r2 = (m * ((t[:, None] - cy[:, None, None]) ** 2 + (t[None, :] - cx[:, None, None]) ** 2)).sum((1, 2)) / total
    return torch.stack([cy, cx], 1), r2


def test_rotation_and_scaling_act_about_the_canvas_centre():
    x = _blob(64)
    _, r2 = _moments(x)
    rot = Augment(AugmentConfig(fixed_p=0.6, padding="constant", **NO_COLOUR, **{**NO_GEOMETRY, "rotate": 1.0}))
    c, r2_rot = _moments(rot(x, _gen(0)))
    assert (c - 16).abs().max() < 1e-3  # no half-pixel drift
    assert (r2_rot / r2 - 1).abs().max() < 0.02  # a rotation keeps the blob's size
    sc = Augment(AugmentConfig(fixed_p=0.6, padding="constant", **NO_COLOUR, **{**NO_GEOMETRY, "scale": 1.0}))
    c, r2_sc = _moments(sc(x, _gen(0)))
    assert (c - 16).abs().max() < 1e-3
    ratio = (r2_sc / r2).sqrt()
    assert ((ratio - 1).abs() > 0.02).sum() > 16  # scaled blobs: lognormal(0, (0.2 ln 2)^2) factors
    assert ratio.log2().abs().max() < 4 * 0.2


def test_xflip_is_an_exact_mirror(digits):
    x = digits[:64]
    y = Augment(AugmentConfig(fixed_p=0.8, **NO_COLOUR, **{**NO_GEOMETRY, "xflip": 1.0}))(x, _gen(0))
    flipped = (y == x.flip(-1)).flatten(1).all(1)
    same = (y == x).flatten(1).all(1)
    assert bool((flipped | same).all())
    assert 0.25 < flipped.float().mean() < 0.55  # flipped with probability p / 2 = 0.4
