"""IMLE's nearest-sample pull (train.nearest_weight, training/gan.py): each real picks the nearest of G's
candidates of its class by glyph shape, and G is pulled towards it."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_run
from posgen.errors import ConfigError
from posgen.families import FAMILIES
from posgen.training.codes import glyph_shape
from posgen.training.gan import GANTrainer
from posgen.training.loop import train


def test_glyph_shape_ignores_hue_and_brightness_but_not_the_stroke():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    shape = glyph_shape(x)
    assert shape.shape == (2, 1, 8, 8)
    assert torch.equal(glyph_shape(x[:, [1, 2, 0]]), shape)
    assert torch.allclose(glyph_shape(0.5 * x + 0.2), shape, atol=1e-3)
    assert torch.allclose(shape.mean(dim=(2, 3)), torch.zeros(2, 1), atol=1e-5)
    assert (glyph_shape(x.flip(3)) - shape).abs().max() > 0.1


def test_each_real_is_pulled_towards_the_nearest_candidate_of_its_class_in_the_batch(monkeypatch):
    cfg = tiny_run("digits-baseline", "train.nearest_weight=1", "train.nearest_candidates=5")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=2)
    calls = []
    real_fakes = trainer._fakes

    def fakes(ws, grid):
        images = real_fakes(ws, grid)
        calls.append((ws.detach()[:, 0].clone(), images.detach().clone()))
        return images

    monkeypatch.setattr(trainer, "_fakes", fakes)
    reals = torch.rand(4, 3, 16, 16) * 2 - 1
    reals[2] = reals[1]  # two identical "3"s: one pool of ten "3" candidates, so one choice
    classes = torch.tensor([0, 3, 3, 9])
    loss = trainer._nearest_pull(0, reals, classes, trainer._grid(0, 16))
    (cand_ws, candidates), (drawn_ws, drawn) = calls
    assert cand_ws.shape[0] == 20 and drawn_ws.shape[0] == 4
    # five candidates per real, asked for its class; the two "3"s choose among all ten "3" candidates
    distance = (glyph_shape(candidates)[None] - glyph_shape(reals)[:, None]).square().flatten(2).sum(2)  # [4, 20]
    reachable = classes[:, None] == classes.repeat_interleave(5)[None, :]
    nearest = distance.masked_fill(~reachable, float("inf")).argmin(1)
    assert torch.allclose(drawn_ws, cand_ws[nearest])
    assert nearest[0] < 5 and 5 <= nearest[1] < 15 and nearest[3] >= 15
    assert torch.equal(drawn_ws[1], drawn_ws[2])
    assert torch.allclose(loss, (glyph_shape(drawn) - glyph_shape(reals)).square().mean())
    assert loss.requires_grad


def test_the_candidates_ask_for_the_real_class(monkeypatch):
    cfg = tiny_run("digits-baseline", "train.nearest_weight=1", "train.nearest_candidates=3")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=0)
    seen = []
    real_styles = trainer._styles
    monkeypatch.setattr(trainer, "_styles", lambda z: seen.append(z) or real_styles(z))
    classes = torch.tensor([1, 7, 7, 2])
    trainer._nearest_pull(5, torch.rand(4, 3, 16, 16), classes, trainer._grid(5, 16))
    assert torch.equal(trainer.G.mapping.classes(seen[0]), classes.repeat_interleave(3))
    assert torch.equal(trainer.G.mapping.classes(seen[1]), classes)


def test_the_pull_alone_draws_g_towards_the_reals():
    """G stepped on the pull's gradient alone fits a fixed batch of reals better than it started."""
    torch.manual_seed(0)
    cfg = tiny_run("digits-baseline", "train.nearest_weight=1", "train.nearest_candidates=4")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=0)
    reals = trainer._reals(0, 16)
    classes = trainer.dataset.labels[trainer._indices(0)]
    grid = trainer._grid(0, 16)
    opt = torch.optim.Adam(trainer.G.parameters(), lr=2e-3, betas=(0.0, 0.99))
    losses = []
    for step in range(60):
        loss = trainer._nearest_pull(step, reals, classes, grid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10, losses


def test_lazy_pull_runs_on_its_interval_and_its_log_averages_the_steps_that_pulled(tmp_path, monkeypatch):
    cfg = tiny_run("digits-baseline", "train.nearest_weight=2", "train.nearest_interval=2", "train.kimg=0.016",
                   "train.log_kimg=0.016")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=0)
    assert [("loss/nearest" in trainer.train_step()) for _ in range(3)] == [True, False, True]
    calls = []
    real_pull = GANTrainer._nearest_pull

    def pull(self, *args):
        loss = real_pull(self, *args)
        calls.append(loss.item())
        return loss

    monkeypatch.setattr(GANTrainer, "_nearest_pull", pull)
    train(cfg, tmp_path / "run", progress=False)
    line = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert len(calls) == 2 and line["step"] == 4  # steps 0 and 2 of four
    assert line["loss/nearest"] == pytest.approx(sum(calls) / 2, rel=1e-5)


@pytest.mark.parametrize("override, message", [
    ("train.nearest_weight=-1", "train.nearest_weight must be >= 0"),
    ("train.nearest_candidates=0", "train.nearest_candidates and train.nearest_interval >= 1"),
    ("train.nearest_interval=0", "train.nearest_candidates and train.nearest_interval >= 1"),
])
def test_bad_pull_settings_are_refused_in_one_line(override, message):
    with pytest.raises(ConfigError, match=message):
        tiny_run("digits-baseline", override)
