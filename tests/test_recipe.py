"""Training-recipe levers against mode collapse (issue 12, docs/recipe.md): PacGAN packing in D."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_run
from posgen import checkpoint
from posgen.config import apply_overrides
from posgen.models.discriminator import Discriminator, DiscriminatorConfig
from posgen.presets import get_preset
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
