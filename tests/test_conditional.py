"""Class-conditional GANs: the class carried by z, the conditional mapping, the projection D, the
trainer feeding D each image's class, and `--class` in the CLI."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_run
from posgen.cli import main
from posgen.errors import CapabilityError, ConfigError
from posgen.families import FAMILIES
from posgen.models.discriminator import Discriminator, DiscriminatorConfig, mbstd_group
from posgen.ops.mapping import MappingNetwork, latent_classes, with_class
from posgen.sampling import load, render_seeds
from posgen.training.config import GANTrainConfig
from posgen.training.gan import _LATENT, GANTrainer
from posgen.training.loss import StyleGANLoss
from posgen.training.multiscale import step_generator

CONDITIONAL = ("model.num_classes=10", "discriminator.num_classes=10")
UNCONDITIONAL = ("model.num_classes=0", "discriminator.num_classes=0", "train.class_weight=0")


def test_latents_carry_uniform_classes_and_with_class_moves_only_the_first_coordinate():
    z = torch.randn(200_000, 4, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(latent_classes(z, 10), minlength=10) / len(z)
    assert (counts - 0.1).abs().max() < 0.003  # binomial std at 200k: 0.0007
    moved = with_class(z[:1000], 7, 10)
    assert (latent_classes(moved, 10) == 7).all()
    assert torch.equal(moved[:, 1:], z[:1000, 1:])
    back = with_class(moved, latent_classes(z[:1000], 10), 10)  # the same place inside the cell: a round trip
    assert torch.allclose(back, z[:1000], atol=1e-4)
    with pytest.raises(ValueError, match=r"classes must be integers in \[0, 10\)"):
        with_class(z[:2], 10, 10)


def test_the_unconditional_mapping_keeps_its_weights_and_the_conditional_one_reads_the_class():
    plain = MappingNetwork(8, 16, 2, 0.01)
    assert set(plain.state_dict()) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "w_avg"}
    with pytest.raises(ValueError, match="unconditional"):
        plain.classes(torch.zeros(1, 8))
    m = MappingNetwork(8, 16, 2, 0.01, num_classes=10)
    z = torch.randn(6, 8)
    w = m(z)
    other = m(with_class(z, (latent_classes(z, 10) + 5) % 10, 10))
    assert not torch.allclose(w, other)
    # the conditional input is z and the normalised class embedding side by side (StyleGAN2-ADA)
    x = torch.cat([F.normalize(z, dim=1) * math.sqrt(8),
                   F.normalize(m.embed(F.one_hot(latent_classes(z, 10), 10).float()), dim=1) * math.sqrt(16)], 1)
    assert torch.allclose(w, m.layers(x), atol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        MappingNetwork(8, 16, 2, 0.01, num_classes=1)


def test_the_projection_discriminator_scores_each_pack_with_its_classes():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(resolution=16, channel_base=128, channel_max=16, num_classes=10, pack=2))
    x = torch.randn(4, 3, 16, 16)
    c = torch.tensor([1, 2, 3, 4])
    logits = D(x, c)
    assert logits.shape == (2,)
    assert not torch.allclose(logits[0], D(x, torch.tensor([2, 1, 3, 4]))[0])  # a pack's classes are ordered
    assert torch.equal(D(x, torch.tensor([1, 2, 9, 9]))[0], logits[0])  # ... and belong to their pack only
    # the logit is <features, embedded classes> / sqrt(channels)
    features = {}
    D.out.register_forward_hook(lambda mod, inp, out: features.setdefault("f", out))
    D(x, c)
    onehot = F.one_hot(c, 10).float().reshape(2, 20)
    assert torch.allclose(logits, (features["f"] * D.embed(onehot)).sum(1) / math.sqrt(16), atol=1e-6)
    with pytest.raises(ValueError, match=r"needs one class per image \(\[4\]\), got None"):
        D(x)
    plain = Discriminator(DiscriminatorConfig(resolution=16, channel_base=128, channel_max=16))
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, c)


def test_the_auxiliary_classifier_gives_one_row_per_image_and_its_loss_enters_g_and_d():
    torch.manual_seed(1)
    D = Discriminator(DiscriminatorConfig(resolution=16, channel_base=128, channel_max=16, num_classes=10, pack=2))
    x, c = torch.randn(4, 3, 16, 16), torch.tensor([1, 2, 3, 4])
    logits, class_logits = D(x, c, classify=True)
    assert torch.equal(logits, D(x, c)) and class_logits.shape == (4, 10)
    features = {}
    D.fc.register_forward_hook(lambda mod, inp, out: features.setdefault("h", out))
    D(x, c)
    assert torch.allclose(class_logits, D.classifier(features["h"]).reshape(4, 10))  # pack row -> its images' rows
    plain = StyleGANLoss(D, GANTrainConfig(class_weight=0))
    weighted = StyleGANLoss(D, GANTrainConfig(class_weight=0.5))
    ce = F.cross_entropy(class_logits, c)
    assert torch.allclose(weighted.generator_loss(x, 0, None, c), plain.generator_loss(x, 0, None, c) + 0.5 * ce)
    loss_w, stats = weighted.discriminator_loss(x, x.flip(0), 0, False, None, c, c.flip(0))
    loss_p, _ = plain.discriminator_loss(x, x.flip(0), 0, False, None, c, c.flip(0))
    assert torch.allclose(loss_w, loss_p + 0.5 * ce) and stats["D/class_loss"] == pytest.approx(ce.item())


def test_late_packing_classifies_each_image_alone_and_judges_the_pack_together():
    """pack_at "features": the trunk and the class head see one image each, the logit a pack's joined
    features; PacGAN's stacked input mixes a pack's images from the first layer on (mbstd off: group 1)."""
    torch.manual_seed(2)
    x, c = torch.randn(4, 3, 16, 16), torch.tensor([1, 1, 3, 3])
    other = x.clone()
    other[1] = torch.randn(3, 16, 16)  # the second image of the first pack replaced
    kw = dict(resolution=16, channel_base=128, channel_max=16, num_classes=10, pack=2, mbstd_group=1)
    late = Discriminator(DiscriminatorConfig(**kw, pack_at="features"))
    logits, class_logits = late(x, c, classify=True)
    logits2, class_logits2 = late(other, c, classify=True)
    assert logits.shape == (2,) and class_logits.shape == (4, 10)
    assert torch.equal(class_logits2[[0, 2, 3]], class_logits[[0, 2, 3]])  # image 0 is classified alone
    assert not torch.allclose(class_logits2[1], class_logits[1])
    assert not torch.allclose(logits2[0], logits[0]) and torch.equal(logits2[1], logits[1])  # its pack's logit moved
    assert late.fromrgb.weight.shape[1] == 3 and late.classifier.weight.shape[0] == 10
    early = Discriminator(DiscriminatorConfig(**kw))
    assert early.fromrgb.weight.shape[1] == 6
    assert not torch.allclose(early(other, c, classify=True)[1][0], early(x, c, classify=True)[1][0])
    with pytest.raises(ValueError, match="discriminator.pack_at must be 'input' or 'features', got 'middle'"):
        DiscriminatorConfig(**kw, pack_at="middle").validate()


def test_class_confidence_hinges_the_generators_class_term_per_fake():
    """G's AC term is max(0, CE - (-log tau)) per fake: fakes whose asked class D's classifier already
    gives probability >= tau add nothing, the others their cross-entropy less the margin."""
    torch.manual_seed(2)
    D = Discriminator(DiscriminatorConfig(resolution=16, channel_base=128, channel_max=16, num_classes=10))
    x, c = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 4, 5])
    _, class_logits = D(x, c, classify=True)
    ce = F.cross_entropy(class_logits, c, reduction="none")
    tau = float(torch.exp(-ce.detach().median()))  # about half the fakes are past this probability
    plain = StyleGANLoss(D, GANTrainConfig(class_weight=0))
    plain_ac = StyleGANLoss(D, GANTrainConfig(class_weight=1))
    hinged = StyleGANLoss(D, GANTrainConfig(class_weight=1, class_confidence=tau))
    base = plain.generator_loss(x, 0, None, c)
    term = hinged.generator_loss(x, 0, None, c) - base
    expected = (ce + math.log(tau)).clamp(min=0).mean()
    assert term.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (ce > -math.log(tau)).sum() not in (0, 6)  # the hinge cuts some fakes, not all or none
    assert (plain_ac.generator_loss(x, 0, None, c) - base).item() == pytest.approx(ce.mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"train.class_confidence must be in \(0, 1\], got 0"):
        GANTrainConfig(class_confidence=0).validate()


@pytest.mark.parametrize("overrides, message", [
    (["model.num_classes=10"], r"model.num_classes \(10\) and discriminator.num_classes \(0\) must agree"),
    (["discriminator.num_classes=1", "model.num_classes=1"], "discriminator.num_classes must be 0 .* or at least 2"),
    (["train.class_weight=1"], "train.class_weight needs a class-conditional run"),
    ([*CONDITIONAL, "train.class_weight=-1"], "train.class_weight must be >= 0, got -1"),
])
def test_mismatched_class_counts_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_run("digits-mspe", *UNCONDITIONAL, *overrides)


def test_a_generator_without_mapping_cannot_be_conditional():
    with pytest.raises(ConfigError, match="discriminator.num_classes needs a generator with a mapping network; "
                                          "this is a dcgan model"):
        tiny_run("digits-dcgan-nopad-spe", "discriminator.num_classes=10")


def test_a_conditional_run_on_unlabelled_data_is_refused_before_training():
    cfg = tiny_run("panorama-cips", *CONDITIONAL)
    with pytest.raises(ConfigError, match="needs a labelled data source; sample:china.jpg has no classes"):
        GANTrainer(cfg, FAMILIES[cfg.family])


@pytest.mark.parametrize("preset", ["digits-mspe", "digits-cips"])
def test_the_trainer_gives_d_the_class_of_every_real_and_fake_image(preset, monkeypatch):
    cfg = tiny_run(preset, *CONDITIONAL)
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=3)
    seen = {}
    real_G, real_D = trainer.loss.generator_loss, trainer.loss.discriminator_loss

    def generator_loss(fakes, kimg, generator, classes):
        seen["fake_classes_G"] = classes
        return real_G(fakes, kimg, generator, classes)

    def discriminator_loss(reals, fakes, kimg, r1, generator, real_classes, fake_classes):
        seen.update(reals=reals, real_classes=real_classes, fake_classes=fake_classes)
        return real_D(reals, fakes, kimg, r1, generator, real_classes, fake_classes)

    monkeypatch.setattr(trainer.loss, "generator_loss", generator_loss)
    monkeypatch.setattr(trainer.loss, "discriminator_loss", discriminator_loss)
    trainer.train_step()
    idx = trainer._indices(0)
    assert torch.equal(seen["real_classes"], trainer.dataset.labels[idx])
    assert torch.allclose(seen["reals"], trainer.dataset.images[idx].float() / 127.5 - 1)
    # the fakes' classes are those their latents carry, the same for G's and D's loss
    z = torch.randn(2, cfg.train.batch_size, cfg.model.z_dim, generator=step_generator(3, 0, _LATENT))[0]
    assert torch.equal(seen["fake_classes_G"], latent_classes(z, 10))
    assert torch.equal(seen["fake_classes"], seen["fake_classes_G"])


def test_a_conditional_run_trains_resumes_and_draws_the_asked_class_from_the_cli(tmp_path, capsys):
    from posgen.training.loop import train

    out = tmp_path / "run"
    train(tiny_run("digits-mspe", *CONDITIONAL), out, seed=1, progress=False)
    G, _, _ = load(str(out), "cpu")
    assert "classes" in G.capabilities and "classes" not in FAMILIES["stylegan2"].generator.capabilities
    asked = render_seeds(G, [0, 1, 2], label=4)
    latents = G.latents([0, 1, 2])
    assert torch.equal(asked, G.render(with_class(latents, 4, 10)))  # the option moves z into class 4's cell
    assert not torch.allclose(asked, render_seeds(G, [0, 1, 2]))
    assert main(["generate", "--checkpoint", str(out), "--seeds", "0-1", "--class", "4", "--out", str(tmp_path / "g")]) == 0
    assert main(["generate", "--checkpoint", str(out), "--class", "10", "--out", str(tmp_path / "h")]) == 2
    assert "--class 10 is not a class of" in capsys.readouterr().err
    with pytest.raises(CapabilityError, match="it draws classes 0..9"):
        render_seeds(G, [0], label=-1)
    # evaluate reports how often the classifier reads the class each seed asked for
    report = tmp_path / "eval.json"
    for extra in ([], ["--class", "2"]):
        assert main(["evaluate", "--checkpoint", str(out), "--metrics", "coverage", "--num-samples", "24",
                     "--out", str(report), *extra]) == 0
    free, asked = (json.loads(line)["results"]["coverage"] for line in report.read_text().splitlines())
    assert 0 <= free["class_agreement"] <= 1
    assert asked["class_agreement"] == pytest.approx(asked["fractions"][2], abs=1e-6)  # every seed asked for a 2


def test_class_option_on_an_unconditional_model_is_refused_in_one_line(tmp_path, capsys):
    # the shipped DCGAN is unconditional (its preset has no classes)
    assert main(["generate", "--checkpoint", "digits-dcgan", "--class", "3", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--class needs a class-conditional generator (trained with model.num_classes); "
                        "digits-dcgan is a dcgan model"), err
    assert len(err.splitlines()) == 1


def test_mode_seeking_pairs_share_their_class_in_a_conditional_run(monkeypatch):
    cfg = tiny_run("digits-mspe", *CONDITIONAL, "train.diversity=0.1", "train.batch_size=8")
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=5)
    seen = []
    real_G = trainer.loss.generator_loss
    monkeypatch.setattr(trainer.loss, "generator_loss", lambda f, k, g, c: seen.append(c) or real_G(f, k, g, c))
    for _ in range(3):
        trainer.train_step()
    for classes in seen:  # MSGAN compares two latents of one condition: halves of the batch pair up
        assert torch.equal(classes[:4], classes[4:])
    assert len({tuple(c[:4].tolist()) for c in seen}) > 1  # ... drawn anew each step


@pytest.mark.parametrize("overrides, slots", [
    (["discriminator.pack=4"], [0, 0, 0, 0, 1, 1, 1, 1]),  # two packs of four
    (["discriminator.pack=2", "discriminator.pack_at=features"], [0, 0, 1, 1, 2, 2, 3, 3]),  # packs joined late
    (["train.class_groups=true"], [0, 1, 0, 1, 0, 1, 0, 1]),  # the minibatch-stddev groups: i mod N/G
    (["discriminator.pack=2", "train.diversity=0.1"], [0, 0, 1, 1, 0, 0, 1, 1]),  # packs, and halves paired
    # groups of three (i mod 4) and the pairs (i, i + 6) chain groups 0 and 2, 1 and 3
    (["train.class_groups=true", "train.diversity=0.1", "train.batch_size=12", "discriminator.mbstd_group=3"],
     [0, 1, 0, 1] * 3),
])
def test_packs_class_groups_and_mode_seeking_pairs_hold_one_class(overrides, slots, monkeypatch):
    cfg = tiny_run("digits-mspe", *CONDITIONAL, "discriminator.mbstd_group=4", "train.batch_size=8", *overrides)
    trainer = GANTrainer(cfg, FAMILIES[cfg.family], seed=6)
    seen = []
    real_D = trainer.loss.discriminator_loss

    def discriminator_loss(reals, fakes, kimg, r1, generator, real_classes, fake_classes):
        seen.append((reals, real_classes, fake_classes))
        return real_D(reals, fakes, kimg, r1, generator, real_classes, fake_classes)

    monkeypatch.setattr(trainer.loss, "discriminator_loss", discriminator_loss)
    slots = torch.tensor(slots)
    for step in range(4):
        trainer.train_step()
        reals, real_classes, fake_classes = seen[-1]
        idx = trainer._indices(step)
        assert torch.equal(reals, trainer.dataset.images[idx].float() / 127.5 - 1)
        assert torch.equal(real_classes, trainer.dataset.labels[idx])
        for classes in (real_classes, fake_classes):
            for s in slots.unique():
                assert len(classes[slots == s].unique()) == 1
    if "train.class_groups=true" in overrides:  # ... the very groups D's minibatch_stddev forms
        g = mbstd_group(cfg.train.batch_size, cfg.discriminator.mbstd_group)
        assert g > 1 and all((c.view(g, -1) == c.view(g, -1)[:1]).all() for _, r, f in seen for c in (r, f))
    if "train.diversity=0.1" in overrides:  # ... and MSGAN's pairs
        h = cfg.train.batch_size // 2
        assert all(torch.equal(c[:h], c[h:2 * h]) for _, r, f in seen for c in (r, f))
    drawn = torch.cat([torch.cat([r, f]) for _, r, f in seen])
    assert len(drawn.unique()) > 3  # the slots' classes vary


@pytest.mark.parametrize("overrides", [["train.class_groups=true"],
                                       [*CONDITIONAL, "train.class_groups=true", "discriminator.pack=2"]])
def test_class_groups_need_a_conditional_single_image_d(overrides):
    with pytest.raises(ConfigError, match="train.class_groups needs a class-conditional run with a single-image D"):
        tiny_run("digits-mspe", *UNCONDITIONAL, *overrides)
