"""Issue 17, nothing lost, nothing silent: durable atomic writes (fsync), stale temporary files of
killed writers removed, an early first checkpoint, `--resume` of a run without one refused in one
line, `posgen info --verify`, and a verified digest in every shipped asset. The kill -9 harness is
benchmarks/kill_resume.py."""
import dataclasses
import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import tiny_run
from posgen import checkpoint
from posgen.cli import main
from posgen.errors import CheckpointError
from posgen.files import atomic_write, remove_stale_temps
from posgen.training import loop
from posgen.training.loop import train

ASSETS = Path(checkpoint.__file__).parent / "assets"


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- atomic_write ------------------------------------------------------------------------------
def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("whole"))
    assert events == [("fsync", "file"), ("replace", "a.txt"), ("fsync", "folder")]
    assert (tmp_path / "a.txt").read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    (tmp_path / "a.txt").write_text("old")

    def half(tmp):
        Path(tmp).write_text("ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "a.txt", half)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_the_next_save_removes_a_killed_writers_temp_file_but_not_a_live_ones(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    stale = [tmp_path / f".a.txt.{dead}-k9x.tmp", tmp_path / ".a.txt.q1w2e3.tmp"]  # the second: an older posgen's name
    kept = [tmp_path / f".a.txt.{live}-r4t.tmp", tmp_path / f".b.txt.{dead}-z0z.tmp"]  # a live writer; another file's
    for p in stale + kept:
        p.write_bytes(b"half")
    atomic_write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.txt"] + [p.name for p in kept])
    assert remove_stale_temps(tmp_path) == [kept[1]]  # the whole folder (what a resume does)


def test_a_checkpoint_save_removes_the_temp_file_of_a_killed_save(trained_run, tmp_path):
    tensors, cfg, state = checkpoint.load(trained_run)
    stale = tmp_path / f".checkpoint.safetensors.{_dead_pid()}-abc.tmp"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"half a checkpoint")
    checkpoint.save(tmp_path / "checkpoint.safetensors", tensors, cfg, state)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]


# ---- the driver: early first checkpoint, resume --------------------------------------------------
def _record_saves(monkeypatch) -> list[int]:
    steps = []
    real = checkpoint.save

    def save(path, tensors, config, state):
        steps.append(state["step"])
        real(path, tensors, config, state)

    monkeypatch.setattr(checkpoint, "save", save)
    return steps


@pytest.mark.parametrize("first_seconds, saved", [(60, [0, 4]), (0, [0, 1, 4])])
def test_the_first_checkpoint_comes_after_first_snapshot_seconds(tmp_path, monkeypatch, first_seconds, saved):
    steps = _record_saves(monkeypatch)  # snapshot_kimg=1: 250 steps, past the end of this 4-step run
    train(tiny_run("digits-mspe", "train.snapshot_kimg=1", f"train.first_snapshot_seconds={first_seconds}"),
          tmp_path / "r", seed=3, progress=False)
    assert steps == saved


def test_first_snapshot_seconds_must_be_finite_and_not_negative():
    from posgen.config import ConfigError

    run = tiny_run("digits-mspe")
    for bad in (-1.0, math.inf, math.nan):  # inf and nan are refused by --set already; a config file may hold them
        run.train = dataclasses.replace(run.train, first_snapshot_seconds=bad)
        with pytest.raises(ConfigError, match=f"train.first_snapshot_seconds must be a finite number >= 0, got {bad}"):
            run.validate()


def test_a_run_killed_before_its_first_regular_snapshot_resumes_from_the_early_one(tmp_path, monkeypatch):
    run = tiny_run("digits-mspe", "train.snapshot_kimg=1", "train.first_snapshot_seconds=0")
    straight = train(run, tmp_path / "straight", seed=5, progress=False)
    real_build = loop.build_trainer

    def killed_at_step_3(cfg, seed=0, device="cpu"):
        trainer = real_build(cfg, seed, device)
        step = trainer.train_step

        def train_step():
            if trainer.step == 2:
                raise KeyboardInterrupt  # what the process sees of a kill: it stops between two lines
            return step()

        trainer.train_step = train_step
        return trainer

    monkeypatch.setattr(loop, "build_trainer", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(run, tmp_path / "killed", seed=5, progress=False)
    monkeypatch.setattr(loop, "build_trainer", real_build)
    assert checkpoint.load(tmp_path / "killed")[2]["step"] == 1  # the early checkpoint, not step 0
    train(None, tmp_path / "killed", resume=True, progress=False)
    a, b = checkpoint.load(straight)[0], checkpoint.load(tmp_path / "killed")[0]
    assert checkpoint.tensor_digest(a) == checkpoint.tensor_digest(b)


def test_resume_of_a_run_without_a_checkpoint_is_refused_in_one_line_and_a_fresh_start_works(tmp_path, capsys):
    """A kill during start-up: config.json and a half-written checkpoint, no checkpoint."""
    run = tiny_run("digits-mspe")
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_text(run.to_json())
    (out / f".checkpoint.safetensors.{_dead_pid()}-abc.tmp").write_bytes(b"half")
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"posgen: error: {out} has no checkpoint yet")
    assert f"start it again with the same options and --out {out} (its settings are in {out / 'config.json'})" in err
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        train(None, out, resume=True, progress=False)
    train(run, out, seed=1, progress=False)  # the same --out: starts again, the temp file goes
    assert checkpoint.load(out)[2]["step"] == 4 and not list(out.glob(".*.tmp"))


# ---- posgen info --verify ------------------------------------------------------------------------
def test_info_verify_prints_ok_and_the_digest(trained_run, capsys):
    assert main(["info", "--verify", str(trained_run)]) == 0
    digest = checkpoint.tensor_digest(checkpoint.load(trained_run)[0])
    assert capsys.readouterr().out == f"ok {digest}\n"


def test_info_verify_names_a_bit_flipped_file_in_one_line(trained_run, tmp_path, capsys):
    bad = tmp_path / "flipped.safetensors"
    data = bytearray((trained_run / "checkpoint.safetensors").read_bytes())
    data[-100] ^= 0x01  # one bit of the last tensor's bytes
    bad.write_bytes(bytes(data))
    assert main(["info", "--verify", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (f"posgen: error: checkpoint {bad} is corrupt: "
                                                   "its tensors do not match their SHA-256\n")


def test_info_verify_says_when_a_file_predates_checksums(trained_run, tmp_path, capsys):
    src = trained_run / "checkpoint.safetensors"
    with safe_open(str(src), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "sha256"}
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(src)), str(old), metadata=meta)
    assert main(["info", "--verify", str(old)]) == 0
    assert capsys.readouterr().out == f"{old} predates checksums (no sha256 stored): nothing to verify\n"


# ---- shipped assets ------------------------------------------------------------------------------
@pytest.mark.parametrize("asset", sorted(p.name for p in ASSETS.glob("*.safetensors")))
def test_every_shipped_asset_carries_a_digest_that_verifies(asset):
    path = ASSETS / asset
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    assert len(meta.get("sha256", "")) == 64, f"{asset} has no sha256"
    assert checkpoint.tensor_digest(load_file(str(path))) == meta["sha256"]
    if meta["format"] == checkpoint.FORMAT:
        assert checkpoint.verify(path) == meta["sha256"]
        json.loads(meta["config"]), json.loads(meta["state"])


def test_a_shipped_asset_with_a_flipped_bit_is_refused(tmp_path):
    bad = tmp_path / "digits-mspe.safetensors"
    shutil.copy(ASSETS / "digits-mspe.safetensors", bad)
    data = bytearray(bad.read_bytes())
    data[-7] ^= 0x80
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"checkpoint {bad} is corrupt"):
        checkpoint.load(bad)


def test_shipped_digits_feature_weights_with_a_flipped_bit_are_refused(tmp_path):
    from posgen.errors import MetricError
    from posgen.metrics.digits_features import SHIPPED, load_digits_extractor

    bad = tmp_path / SHIPPED
    data = bytearray((ASSETS / SHIPPED).read_bytes())
    data[-7] ^= 0x80
    bad.write_bytes(bytes(data))
    with pytest.raises(MetricError, match=f"digits feature weights {bad} are corrupt"):
        load_digits_extractor(weights=bad)
    assert load_digits_extractor().training_facts["heldout_accuracy"] > 0.9  # the intact file loads


def test_atomic_writes_get_a_plain_files_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "x.json", lambda tmp: Path(tmp).write_text("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
