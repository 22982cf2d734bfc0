import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from posgen.cli import main
from posgen.options import parse_seeds, parse_shift, parse_size

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "posgen.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV, check=False)


def test_presets_lists_every_required_preset_one_line_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    for required in ["digits-baseline", "digits-sspe", "digits-mspe", "digits-mspe-nopad", "digits-csg-nopad",
                     "digits-mspie", "ffhq256-baseline", "ffhq256-mspe", "ffhq256-mspie",
                     "digits-cips", "digits-cips-ne", "ffhq256-cips"]:
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
    ["evaluate", "--metrics", "fid"],
    ["evaluate", "--checkpoint", "{ckpt}", "--num-samples", "0"],
    ["evaluate", "--checkpoint", "{ckpt}", "--region", "0,0,8"],
    ["evaluate", "--checkpoint", "{ckpt}", "--feature-extractor", "vgg"],
    ["evaluate", "--checkpoint", "{ckpt}", "--data", "/no/such/folder", "--metrics", "fid"],
    ["evaluate", "--checkpoint", "{ckpt}", "--real-vs-real", "--metrics", "eqt"],
    ["evaluate", "--checkpoint", "{ckpt}", "--metrics", "fid", "--feature-extractor", "inception",
     "--inception-weights", "{bad}"],
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


ALL_METRICS = "fid,kid,pr,swd,spectrum,eqt,eqt-frac,eqr,shift-consistency"
SMALL = ["--num-samples", "24", "--eq-samples", "2", "--shift-samples", "2", "--step", "4", "--batch-size", "8"]


def test_evaluate_runs_every_metric_prints_json_appends_and_plots(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval" / "metrics.jsonl"
    for _ in range(2):
        assert main(["evaluate", "--checkpoint", str(trained_run), "--metrics", ALL_METRICS, *SMALL,
                     "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    first, second = (json.loads(line) for line in lines[-2:])
    res = second["results"]
    assert list(res) == ALL_METRICS.split(",")
    assert res["fid"]["fid"] > 0 and res["fid"]["feature_extractor"] == "digits" and res["fid"]["num_real"] == 24
    assert 0 <= res["pr"]["precision"] <= 1 and res["swd"]["swd"] > 0 and res["spectrum"]["spectral_distance_db"] > 0
    assert all(isinstance(res[k][k], (float, str)) for k in ("eqt", "eqt-frac", "eqr"))
    assert res["shift-consistency"]["shifts"] == [0, 4, 8]
    assert second["feature_extractor"] == "digits" and second["size"] == [16, 16]
    # the second run read the cached real statistics and found the same numbers
    assert first["results"]["fid"] == second["results"]["fid"] and first["results"]["swd"] == second["results"]["swd"]
    assert len(list((tmp_path / "cache" / "stats").glob("real-*.npz"))) == 3  # features, descriptors, spectra
    assert len(out.read_text().strip().splitlines()) == 2
    assert (out.parent / "metrics.spectrum.png").exists() and (out.parent / "metrics.shift-consistency.png").exists()


def test_evaluate_at_a_larger_canvas_and_shifted_grid(trained_run, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(trained_run), "--metrics", "fid,eqt", "--zoom", "1.5",
                 "--shift", "0,3", "--no-cache", *SMALL]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["size"] == [24, 24] and rec["shift"] == [0, 3] and rec["results"]["fid"]["fid"] > 0


def test_evaluate_wider_canvas_allows_generator_metrics_only(trained_run, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(trained_run), "--metrics", "eqr", "--size", "16x32", *SMALL]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == [16, 32]
    assert main(["evaluate", "--checkpoint", str(trained_run), "--metrics", "fid", "--size", "16x32", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "aspect ratio" in err


def test_evaluate_against_an_image_folder(trained_run, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["evaluate", "--checkpoint", str(trained_run), "--data", str(folder), "--metrics", "fid,swd",
                 "--feature-extractor", "digits", "--no-cache", *SMALL]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["data"] == str(folder) and rec["results"]["fid"]["num_real"] == 10
    # shift consistency needs to know where the content is
    assert main(["evaluate", "--checkpoint", str(trained_run), "--data", str(folder),
                 "--metrics", "shift-consistency", *SMALL]) == 2
    assert "--region" in capsys.readouterr().err


def test_evaluate_real_vs_real_floor(trained_run, capsys):
    assert main(["evaluate", "--checkpoint", str(trained_run), "--real-vs-real", "--metrics", "fid,kid,swd",
                 "--no-cache", *SMALL]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["real_vs_real"] is True and rec["results"]["fid"]["num_real"] == 24 and rec["results"]["fid"]["fid"] > 0


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
              "--set", "train.batch_size=2", "--set", "discriminator.pack=1", "--set", "train.snapshot_kimg=0.002"]
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


def test_one_canvas_meaning_in_every_command_rotate_and_signed_values(tmp_path, capsys):
    for name in ("digits-mspe", "digits-cips"):
        out = tmp_path / name
        assert main(["generate", "--checkpoint", name, "--seeds", "0", "--rotate", "30", "--shift", "-3,2",
                     "--out", str(out)]) == 0
        assert (out / "seed0000.png").exists()
    capsys.readouterr()
    cases = [(["--checkpoint", "digits-cips", "--noise", "random"],
              "--noise needs a generator with noise inputs; digits-cips is a cips model"),
             (["--checkpoint", "digits-mspe", "--chunk-points", "64"],
              "--chunk-points needs a pixel-independent generator (cips); digits-mspe is a stylegan2 model"),
             (["--checkpoint", "digits-mspe", "--truncation", "nan"], "--truncation must be a finite number"),
             (["--checkpoint", "digits-mspe", "--zoom", "625"], "8 image(s) of 20000x20000 in batches of 8 would need"),
             (["--checkpoint", "digits-mspe", "--rotate", "inf"], "--rotate must be a finite number")]
    for args, message in cases:
        assert main(["generate", *args, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_outputs_that_would_destroy_other_files_are_refused(trained_run, tmp_path, capsys):
    ckpt = trained_run / "checkpoint.safetensors"
    before = ckpt.read_bytes()
    assert main(["evaluate", "--checkpoint", str(trained_run), "--metrics", "eqt", "--out", str(ckpt)]) == 2
    assert "appends JSON lines to a .jsonl" in capsys.readouterr().err and ckpt.read_bytes() == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["generate", "--checkpoint", str(trained_run), "--out", str(a_file)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err and a_file.read_text() == "mine"
