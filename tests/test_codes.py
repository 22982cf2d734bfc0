"""InfoGAN's latent codes (training/codes.py): Q reads only the shape of an image, learns a code drawn
as a stroke, and the trainer trains G and Q on the coordinates of z after the class coordinate."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_run
from posgen.errors import ConfigError
from posgen.families import FAMILIES
from posgen.training.codes import CodeRegressor
from posgen.training.gan import _LATENT, GANTrainer
from posgen.training.multiscale import step_generator


def _glyphs(widths: torch.Tensor, hues: torch.Tensor | None = None) -> torch.Tensor:
    """[N, 3, 16, 16] in [-1, 1]: a vertical bar of the given widths (in pixels, fractional) on black, coloured
    by per-image channel weights `hues` [N, 3] (white when None)."""
    x = torch.arange(16).float()
    bar = ((widths[:, None] / 2 - (x - 7.5).abs()).clamp(0, 1))[:, None, :].expand(-1, 16, -1)  # [N, 16, 16]
    bar = bar * (torch.arange(16)[:, None] >= 3).float()  # rows 0-2 stay black
    colour = torch.ones(len(widths), 3) if hues is None else hues
    return bar[:, None] * colour[:, :, None, None] * 2 - 1


def test_q_reads_the_shape_not_the_hue_nor_the_brightness():
    torch.manual_seed(0)
    Q = CodeRegressor(16, 3)
    images = _glyphs(torch.tensor([2.0, 4.0, 6.0]), torch.rand(3, 3) * 0.5 + 0.5)
    codes = Q(images)
    assert torch.equal(Q(images[:, [2, 0, 1]]), codes)  # another hue, the same value channel
    assert torch.allclose(Q(0.5 * images + 0.3), codes, atol=1e-3)  # brightness and contrast of the value (eps 1e-4)
    assert (Q(images.roll(3, dims=3)) - codes).abs().max() > 1e-2  # the glyph moved: its shape reads
    assert (codes[0] - codes[1]).abs().max() > 1e-2


def test_q_learns_a_code_drawn_as_the_stroke_width_whatever_its_hue():
    torch.manual_seed(0)
    Q = CodeRegressor(16, 1, width=16)
    opt = torch.optim.Adam(Q.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        code = torch.randn(n, 1, generator=gen)
        return _glyphs(6 + 2 * code[:, 0].clamp(-2, 2), torch.rand(n, 3, generator=gen)), code.clamp(-2, 2)

    images, code = batch(256)
    before = Q.loss(images, code).item()
    for _ in range(150):
        x, c = batch(32)
        opt.zero_grad()
        Q.loss(x, c).backward()
        opt.step()
    after = Q.loss(images, code).item()
    assert before > 0.3 and after < 0.1 * before, (before, after)


def test_the_generator_step_trains_g_and_q_on_the_coordinates_after_the_class(monkeypatch):
    cfg = tiny_run("digits-mspe", "train.latent_codes=3", "train.code_weight=2")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=3)
    seen = {}
    real_loss = trainer.Q.loss

    def loss(images, codes):
        seen["codes"] = codes
        return real_loss(images, codes)

    monkeypatch.setattr(trainer.Q, "loss", loss)
    q_before = [p.detach().clone() for p in trainer.Q.parameters()]
    stats = trainer.train_step()
    z = torch.randn(2, cfg.train.batch_size, cfg.model.z_dim, generator=step_generator(3, 0, _LATENT))[0]
    assert cfg.discriminator.num_classes == 10  # z[:, 0] carries the class: the codes are z[:, 1:4]
    assert torch.equal(seen["codes"], z[:, 1:4])
    assert 0 < stats["loss/codes"] and stats["loss/G"] > 2 * stats["loss/codes"]  # weight 2 on top of the GAN terms
    assert all(not torch.equal(a, b) for a, b in zip(q_before, trainer.Q.parameters()))
    assert {k.split(".")[0] for k in trainer.state_tensors()} >= {"G", "D", "Q", "opt_G"}


def test_unconditional_codes_start_at_the_first_coordinate():
    cfg = tiny_run("digits-cips", "train.latent_codes=2", "model.num_classes=0", "discriminator.num_classes=0",
                   "train.class_weight=0")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=0)
    assert cfg.discriminator.num_classes == 0 and trainer.code_offset == 0


@pytest.mark.parametrize("overrides, message", [
    (["train.latent_codes=16"], r"train.latent_codes \(16\) must leave room in z \(z_dim 16, one coordinate carries"),
    (["train.latent_codes=-1"], "train.latent_codes and train.code_weight must be >= 0"),
])
def test_codes_that_do_not_fit_z_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_run("digits-mspe", *overrides)
