"""Training-recipe levers against mode collapse (issue 12, docs/recipe.md): PacGAN packing in D and
the mode-seeking term."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_run
from posgen import checkpoint
from posgen.config import apply_overrides
from posgen.models.discriminator import Discriminator, DiscriminatorConfig
from posgen.presets import get_preset
from posgen.training.gan import mode_seeking_loss
from posgen.training.loop import train


def test_a_packed_discriminator_judges_consecutive_images_together():
    D = Discriminator(DiscriminatorConfig(resolution=8, channel_base=64, channel_max=8, pack=2, mbstd_group=1)).eval()
    x = torch.randn(4, 3, 8, 8)
    logits = D(x)
    assert logits.shape == (2,)
    y = x.clone()
    y[1] += 1  # the second image of the first pack
    changed = D(y)
    assert changed[0] != logits[0] and changed[1] == logits[1]
    with pytest.raises(ValueError, match="packs 2 images: got a batch of 3"):
        D(x[:3])


def test_pack_must_divide_the_batch():
    with pytest.raises(Exception, match=r"batch_size \(16\) must be a multiple of discriminator.pack \(3\)"):
        apply_overrides(get_preset("digits-baseline"), ["discriminator.pack=3"])
    with pytest.raises(Exception, match="discriminator.pack must be >= 1"):
        apply_overrides(get_preset("digits-baseline"), ["discriminator.pack=0"])


def test_a_packed_run_trains_and_resumes_exactly(tmp_path):
    run = tiny_run("digits-mspe", "discriminator.pack=2")
    straight = train(run, tmp_path / "straight", seed=3, progress=False)
    train(run, tmp_path / "split", seed=3, progress=False, max_seconds=0)
    train(None, tmp_path / "split", resume=True, progress=False)
    a, cfg, _ = checkpoint.load(straight)
    b = checkpoint.load(tmp_path / "split")[0]
    assert cfg.discriminator.pack == 2 and a["D.fromrgb.weight"].shape[1] == 6
    assert all(torch.equal(a[k], b[k]) for k in a)


def _digits(n: int, seed: int = 0) -> torch.Tensor:
    from posgen.data import BiasedDigitsConfig
    from posgen.data.digits import make_biased_digits
    images, _ = make_biased_digits(BiasedDigitsConfig(colors=None, jitter=2, seed=seed))
    return images[:n].float() / 127.5 - 1


def test_mode_seeking_loss_is_high_for_a_collapsed_batch_and_blind_to_hue():
    real, z = _digits(256), torch.randn(256, 128, generator=torch.Generator().manual_seed(0))
    varied = mode_seeking_loss(real, z)
    collapsed = mode_seeking_loss(real[:1].expand(256, -1, -1, -1), z)
    assert collapsed > 1e3 * varied  # identical images: only eps keeps it finite
    recoloured = _digits(256, seed=1)  # the same glyphs in other random hues
    assert torch.allclose(mode_seeking_loss(recoloured, z), varied, rtol=0.05)
    glyph = (real[0].amax(0) + 1) / 2  # intensity in [0, 1]
    hues = torch.rand(256, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    one_glyph_many_hues = glyph * hues / hues.amax(1, keepdim=True) * 2 - 1
    assert mode_seeking_loss(one_glyph_many_hues, z) > 1e3 * varied


def test_the_mode_seeking_term_trains_and_refuses_a_negative_weight(tmp_path):
    a = checkpoint.load(train(tiny_run("digits-baseline", "train.diversity=0.05"), tmp_path / "on", seed=1, progress=False))[0]
    b = checkpoint.load(train(tiny_run("digits-baseline"), tmp_path / "off", seed=1, progress=False))[0]
    assert [k for k in a if k.startswith("G.") and not torch.equal(a[k], b[k])]
    with pytest.raises(Exception, match="train.diversity must be >= 0"):
        apply_overrides(get_preset("digits-baseline"), ["train.diversity=-1"])
