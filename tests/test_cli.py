import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from posgen.cli import main, parse_seeds, parse_shift, parse_size

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "posgen.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_presets_lists_every_required_preset_one_line_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    for required in ["digits-baseline", "digits-sspe", "digits-mspe", "digits-mspe-nopad", "digits-csg-nopad",
                     "digits-mspie", "ffhq256-baseline", "ffhq256-mspe", "ffhq256-mspie"]:
        assert required in names
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_dry_run_prints_the_resolved_config_with_overrides(capsys):
    assert main(["train", "--preset", "digits-mspe", "--set", "model.channel_max=32", "--kimg", "5", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"]["channel_max"] == 32 and cfg["train"]["kimg"] == 5 and cfg["model"]["scale_encoding"] == "sinusoid"


@pytest.mark.parametrize("args", [
    ["train", "--preset", "no-such-preset", "--dry-run"],
    ["train", "--preset", "digits-mspe", "--set", "model.resolution=0", "--dry-run"],
    ["train", "--preset", "digits-mspe", "--set", "nonsense", "--dry-run"],
    ["train", "--preset", "digits-mspe", "--kimg", "-1", "--dry-run"],
    ["train", "--resume", "/no/such/run"],
    ["generate", "--checkpoint", "/no/such/file.safetensors", "--out", "x"],
    ["generate", "--checkpoint", "{ckpt}", "--shift", "1;2", "--out", "{tmp}"],
    ["generate", "--checkpoint", "{ckpt}", "--size", "0x32", "--out", "{tmp}"],
    ["generate", "--checkpoint", "{ckpt}", "--size", "-4x32", "--out", "{tmp}"],
    ["generate", "--checkpoint", "{ckpt}", "--seeds", "5-1", "--out", "{tmp}"],
    ["generate", "--checkpoint", "{bad}", "--out", "{tmp}"],
    ["evaluate", "--checkpoint", "{ckpt}", "--metrics", "fid-of-nothing"],
    ["info", "{bad}"],
    ["frobnicate"],
    [],
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(args, trained_run, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    args = [a.format(ckpt=trained_run, tmp=tmp_path / "o", bad=bad) for a in args]
    r = run_cli(*args)
    assert r.returncode == 2, (args, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("posgen") and "Traceback" not in r.stderr


def test_generate_writes_one_png_per_seed_of_exactly_the_requested_size(trained_run, tmp_path):
    for extra, size in [([], (16, 16)), (["--size", "20x44"], (20, 44)), (["--zoom", "2"], (32, 32)),
                        (["--shift", "3,-2.5", "--roll"], (16, 16)), (["--zoom", "1.5", "--size", "9x31"], (9, 31))]:
        out = tmp_path / "_".join(extra or ["plain"]).replace(",", "_")
        assert main(["generate", "--checkpoint", str(trained_run), "--seeds", "0-2,7", "--out", str(out), *extra]) == 0
        pngs = sorted(p.name for p in out.glob("seed*.png"))
        assert pngs == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
        assert Image.open(out / "seed0007.png").size == (size[1], size[0])  # PIL: (W, H)
        assert (out / "grid.png").exists()


def test_generate_same_seed_same_image(trained_run, tmp_path):
    for d in ("a", "b"):
        main(["generate", "--checkpoint", str(trained_run), "--seeds", "3", "--out", str(tmp_path / d)])
    assert (tmp_path / "a/seed0003.png").read_bytes() == (tmp_path / "b/seed0003.png").read_bytes()


def test_evaluate_prints_json_and_appends_to_file(trained_run, tmp_path, capsys):
    out = tmp_path / "metrics.jsonl"
    for _ in range(2):
        assert main(["evaluate", "--checkpoint", str(trained_run), "--num", "4", "--step", "2", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    res = printed["results"]["shift-consistency"]
    assert 0 <= res["mean"] <= 1 and res["shifts"] == [0, 2, 4, 6, 8]
    assert len(out.read_text().strip().splitlines()) == 2
    assert (tmp_path / "metrics.shift-consistency.png").exists()


def test_info_prints_config_and_progress(trained_run, capsys):
    assert main(["info", str(trained_run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["progress"]["step"] == 4 and info["progress"]["complete"] is True
    assert info["config"]["name"] == "digits-mspe"


def test_train_and_resume_through_the_cli(tmp_path):
    out = tmp_path / "run"
    common = ["--preset", "digits-mspe", "--set", "model.resolution=16", "--set", "discriminator.resolution=16",
              "--set", "data.digits.canvas=[16,16]", "--set", "data.digits.region=[0,0,8,8]",
              "--set", "model.channel_base=128", "--set", "discriminator.channel_base=128",
              "--set", "train.batch_size=2", "--set", "train.snapshot_kimg=0.002"]
    r = run_cli("train", *common, "--kimg", "0.004", "--out", out)
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--resume", out)  # already complete: nothing left to do
    assert r.returncode == 0, r.stderr
    r = run_cli("train", *common, "--kimg", "0.004", "--out", out)
    assert r.returncode == 2 and "already holds a run" in r.stderr


def test_parsers():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_shift("1.5,-2") == (1.5, -2.0)
    assert parse_size("32x64") == (32, 64) and parse_size("48") == (48, 48)
