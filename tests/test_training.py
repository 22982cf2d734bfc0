import json
import math
from collections import Counter

import pytest
import torch

from conftest import tiny_run
from posgen import checkpoint
from posgen.config import ConfigError, apply_overrides
from posgen.presets import PRESETS, get_preset
from posgen.sampling import load
from posgen.errors import TrainingError, UsageError
from posgen.training.loop import build_trainer, train
from posgen.training.multiscale import MultiScaleSampler


def test_multiscale_sampler_honours_the_probabilities():
    sampler = MultiScaleSampler((256, 384, 512), (0.5, 0.25, 0.25), seed=3)
    n = 8000
    counts = Counter(sampler(step) for step in range(n))
    for size, p in zip((256, 384, 512), (0.5, 0.25, 0.25)):
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[size] - n * p) < 4 * sd, counts
    assert [sampler(s) for s in range(50)] == [sampler(s) for s in range(50)]  # a function of the step


def test_multiscale_sampler_rejects_bad_probabilities():
    with pytest.raises(ValueError):
        MultiScaleSampler((32, 64), (0.5, -0.5))
    with pytest.raises(ConfigError, match="sum to 1"):
        apply_overrides(get_preset("digits-mspie"), ["train.multiscale.probs=[0.5,0.2,0.2]"])


def test_every_preset_resolves_and_validates():
    for name in PRESETS:
        cfg = get_preset(name)
        cfg.validate()
        assert cfg.name == name


def test_overrides_are_typed_and_unknown_keys_fail():
    cfg = apply_overrides(get_preset("digits-mspe"), ["model.channel_max=32", "train.xflip=true",
                                                       "model.scale_encoding=null"])
    assert cfg.model.channel_max == 32 and cfg.train.xflip is True and cfg.model.scale_encoding is None
    for bad, msg in [("model.nope=1", "unknown field"), ("model.channel_max=abc", "integer"),
                     ("model.input=foo", "one of"), ("justakey", "key=value")]:
        with pytest.raises(ConfigError, match=msg):
            apply_overrides(get_preset("digits-mspe"), [bad])


@pytest.mark.parametrize("preset, extra", [("digits-mspe", []), ("digits-cips", []),
                                           ("digits-mspe", ["train.augment.enabled=true", "train.augment.speed_kimg=0.01",
                                                           # unconditional, packed by 4: a D whose reals' sign rises at once
                                                           "model.num_classes=0", "discriminator.num_classes=0",
                                                           "train.class_weight=0", "discriminator.pack=4"]),
                                           ("digits-mspe", ["train.latent_codes=3"])])  # InfoGAN's Q and its Adam state
def test_resume_continues_exactly(tmp_path, preset, extra):
    run = tiny_run(preset, "train.log_kimg=0.004", *extra)
    straight = train(run, tmp_path / "straight", seed=4, progress=False)
    # the same run stopped by the time limit after its first step (with a checkpoint), then resumed
    train(run, tmp_path / "split", seed=4, progress=False, max_seconds=0)
    assert checkpoint.load(tmp_path / "split")[2]["step"] == 1
    train(None, tmp_path / "split", resume=True, progress=False)
    a, _, sa = checkpoint.load(straight)
    b, _, sb = checkpoint.load(tmp_path / "split")
    assert sa["step"] == sb["step"] == 4
    timing = ("seconds", "images_per_s")
    lines = {run: [{k: v for k, v in json.loads(x).items() if k not in timing}
                   for x in (tmp_path / run / "stats.jsonl").read_text().splitlines()] for run in ("straight", "split")}
    assert lines["straight"] == lines["split"]  # one line per step (log_kimg = one batch): same losses, no repeats
    assert [x["step"] for x in lines["split"]] == [1, 2, 3, 4] and all("loss/G" in x for x in lines["split"])
    if "train.augment.enabled=true" in extra:  # ADA's p moved (and was resumed with the run)
        assert 0 < lines["split"][-1]["augment/p"] and a["augment.p"] == b["augment.p"] > 0
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_run_extended_on_resume_equals_one_trained_that_long(tmp_path):
    long = train(tiny_run("digits-mspe", "train.kimg=0.016"), tmp_path / "long", seed=2, progress=False)
    train(tiny_run("digits-mspe", "train.kimg=0.008"), tmp_path / "short", seed=2, progress=False)
    with pytest.raises(UsageError, match="shorter than"):
        train(None, tmp_path / "short", resume=True, progress=False, kimg=0.004)
    train(None, tmp_path / "short", resume=True, progress=False, kimg=0.016)
    a, _, sa = checkpoint.load(long)
    b, cfg, sb = checkpoint.load(tmp_path / "short")
    assert sa["step"] == sb["step"] == 4 and cfg.train.kimg == 0.016
    assert json.loads((tmp_path / "short" / "config.json").read_text())["train"]["kimg"] == 0.016
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_directory_contents_and_refusal_to_overwrite(trained_run):
    files = {p.name for p in trained_run.iterdir()}
    assert {"checkpoint.safetensors", "config.json", "logs"} <= files
    assert any(f.startswith("samples-") and f.endswith(".png") for f in files)
    assert not [f for f in files if f.endswith(".tmp")]
    with pytest.raises(UsageError, match="already holds a run"):
        train(tiny_run(), trained_run, progress=False)


def test_load_returns_generator_config_and_state(trained_run):
    G, cfg, state = load(str(trained_run))
    assert cfg.name == "digits-mspe" and state["step"] == 4
    assert not G.training and G(torch.randn(2, 16)).shape == (2, 3, 16, 16)


def test_export_generator_is_small_and_loads(trained_run, tmp_path):
    out = checkpoint.export_generator(trained_run, tmp_path / "g.safetensors")
    assert out.stat().st_size < (trained_run / "checkpoint.safetensors").stat().st_size / 2
    G, _, _ = load(str(out))
    G0, _, _ = load(str(trained_run))
    z = torch.randn(2, 16)
    assert torch.allclose(G(z, noise_mode="off"), G0(z, noise_mode="off"), atol=2e-2)


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read checkpoint") as e:
        checkpoint.load(bad)
    assert "\n" not in str(e.value)


def test_non_finite_loss_stops_with_the_step_number(tmp_path, monkeypatch):
    trainer = build_trainer(tiny_run(), seed=0)
    trainer.train_step()
    with torch.no_grad():
        trainer.D.out.bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match="at step 1"):
        trainer.train_step()


@pytest.mark.parametrize("extra", [
    ("train.multiscale.sizes=[16,24,32]", "train.multiscale.probs=[0.5,0.25,0.25]", "discriminator.adaptive_pool=true"),
    ("train.multiscale.sizes=[16,20,24]", "train.multiscale.grid=\"interp\"", "train.multiscale.resize_to_discriminator=true"),
])
def test_multiscale_training_steps_run(extra):
    trainer = build_trainer(tiny_run("digits-mspe", *extra), seed=0)
    seen = [trainer.train_step()["scale"] for _ in range(8)]
    assert seen == [trainer.scales(step) for step in range(8)]  # the sampled canvas was the one trained
    assert set(seen) <= set(trainer.cfg.train.multiscale.sizes)


def test_ema_tracks_the_generator(trained_run):
    tensors, _, _ = checkpoint.load(trained_run)
    g = checkpoint.prefixed(tensors, "G")
    ema = checkpoint.prefixed(tensors, "G_ema")
    assert g.keys() == ema.keys()
    assert any(not torch.equal(g[k], ema[k]) for k in g if g[k].is_floating_point())


def test_a_corrupt_image_mid_run_is_named_and_the_progress_is_kept(tmp_path, monkeypatch):
    from posgen.data import DataError, open_dataset
    from posgen.training import gan

    class BreaksAtThirdStep(torch.utils.data.Dataset):
        def __init__(self, inner):
            self.inner, self.reads, self.labels = inner, 0, inner.labels  # the digits' classes (conditional presets)

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            self.reads += 1
            if self.reads > 8:  # batch 4: steps 0 and 1 read fine
                raise DataError("cannot read image broken.png: truncated")
            return self.inner.images[i]

    monkeypatch.setattr(gan, "open_dataset", lambda cfg, size: BreaksAtThirdStep(open_dataset(cfg, size)))
    with pytest.raises(DataError, match="broken.png"):
        # data.workers=0: the dataset counts its reads in this process (workers would each count their own)
        train(tiny_run("digits-mspe", "train.kimg=0.4", "train.snapshot_kimg=1", "data.workers=0"), tmp_path / "run",
              progress=False)
    _, _, state = checkpoint.load(tmp_path / "run")
    assert state["step"] == 2  # the steps before the bad file are saved


def test_a_resume_drops_stats_logged_after_the_checkpoint(tmp_path):
    """A kill between a stats line and the next checkpoint: the resumed run logs those steps again, once."""
    run = tiny_run("digits-mspe", "train.log_kimg=0.004")
    train(run, tmp_path / "r", seed=1, progress=False, max_seconds=0)  # checkpoint at step 1
    stats = tmp_path / "r" / "stats.jsonl"
    stats.write_text(stats.read_text() + '{"step": 2, "kimg": 0.008}\n{"step": 3, "kim')  # logged, then killed mid-line
    train(None, tmp_path / "r", resume=True, progress=False)
    assert [json.loads(x)["step"] for x in stats.read_text().splitlines()] == [1, 2, 3, 4]


def test_flipped_bits_in_a_checkpoint_are_caught_by_its_checksum(trained_run, tmp_path):
    import shutil

    bad = tmp_path / "flipped.safetensors"
    shutil.copy(trained_run / "checkpoint.safetensors", bad)
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0x10  # one bit in the last tensor's data
    bad.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="is corrupt: its tensors do not match their SHA-256"):
        checkpoint.load(bad)
    assert checkpoint.load(trained_run)[2]["step"] >= 1  # the intact file loads


def test_a_run_killed_before_its_first_snapshot_resumes_and_stale_temp_files_go(tmp_path):
    run = tiny_run("digits-mspe", "train.snapshot_kimg=1")
    out = tmp_path / "r"
    # a fresh run writes a step-0 checkpoint before training: simulate a kill right after it
    checkpoint.save(out / "checkpoint.safetensors", build_trainer(run, seed=1).state_tensors(), run,
                    {"step": 0, "kimg": 0.0, "seconds": 0.0, "seed": 1, "total_steps": 4})
    (out / ".checkpoint.safetensors.abc123.tmp").write_bytes(b"half a checkpoint")
    train(None, out, resume=True, progress=False)
    assert checkpoint.load(out)[2]["step"] == 4 and not list(out.glob(".*.tmp"))
    straight = train(run, tmp_path / "s", seed=1, progress=False)
    a, b = checkpoint.load(straight)[0], checkpoint.load(out)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)  # resuming from step 0 is the uninterrupted run


def test_resume_refuses_a_checkpoint_without_training_state(trained_run, tmp_path):
    checkpoint.export_generator(trained_run, tmp_path / "g" / "checkpoint.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="no training state"):
        train(None, tmp_path / "g", resume=True, progress=False)


def test_fid_samples_scores_every_snapshot_and_keeps_the_best_as_an_exported_generator(tmp_path):
    from posgen.metrics.evaluate import EvalOptions, evaluate
    from posgen.sampling import make_sample_fn
    from posgen.training.best import SELECTION_SEED

    run = tiny_run("digits-mspe", "train.fid_samples=32")  # snapshots at steps 2 and 4
    out = train(run, tmp_path / "r", progress=False)
    lines = [json.loads(x) for x in (out / "fid.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4] and all(x["fid"] > 0 for x in lines)
    chosen = min(lines, key=lambda x: x["fid"])
    G, _, state = checkpoint.load_generator(out / "best.safetensors")
    assert state["step"] == chosen["step"]
    # the logged figure is that generator's FID on the selection seeds: posgen's evaluation reproduces it
    opts = EvalOptions(grid=G.default_grid(), num_samples=32, seed=SELECTION_SEED, feature_extractor="digits",
                       progress=False, cache_dir=None)
    again = evaluate(make_sample_fn(G), ["fid"], opts, data=run.data, training_size=(16, 16))["fid"]["fid"]
    assert again == pytest.approx(chosen["fid"], abs=1e-3)


def test_a_resumed_run_keeps_the_best_fid_so_far_and_drops_scores_after_its_checkpoint(tmp_path):
    run = tiny_run("digits-mspe", "train.fid_samples=16", "train.kimg=0.008")  # one snapshot, at step 2
    out = train(run, tmp_path / "r", progress=False)
    log = out / "fid.jsonl"
    # pretend step 2 scored perfectly and a later score was logged before a kill
    log.write_text('{"step": 2, "kimg": 0.008, "fid": 0.0}\n{"step": 3, "kimg": 0.012, "fid": 0.0}\n')
    (out / "best.safetensors").unlink()
    train(None, out, resume=True, kimg=0.016, progress=False)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [2, 4]
    assert not (out / "best.safetensors").exists()  # step 4 scored worse than the 0.0 kept from before the resume


def test_d_lr_multiplier_sets_the_discriminators_learning_rate_alone():
    base = build_trainer(tiny_run("digits-baseline"), seed=0)
    fast_d = build_trainer(tiny_run("digits-baseline", "train.d_lr_multiplier=4"), seed=0)
    assert fast_d.opt_G.param_groups[0]["lr"] == base.opt_G.param_groups[0]["lr"]
    assert fast_d.opt_D.param_groups[0]["lr"] == pytest.approx(4 * base.opt_D.param_groups[0]["lr"])
    with pytest.raises(ConfigError, match="d_lr_multiplier"):
        apply_overrides(get_preset("digits-baseline"), ["train.d_lr_multiplier=0"])
