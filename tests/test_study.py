"""The study's own measurements (F4's uniform constant, F6's canvases) and its driver, on tiny runs."""
import json
import math

import pytest
import torch

from posgen.apps.study import EVERY, Study, StudySettings, spatial_uniformity, uniform_constant
from posgen.cli import main
from posgen.models.stylegan2 import Generator
from posgen.sampling import render_seeds
from posgen.grid import Canvas
from posgen.training.loop import train

from conftest import tiny_model, tiny_run


@pytest.mark.parametrize("padding", ["zero", "none"])
def test_a_uniform_constant_gives_a_uniform_image_only_without_padding(padding):
    G = Generator(tiny_model(padding=padding)).eval()
    before = G.input.weight.clone()
    img = render_seeds(uniform_constant(G, 0.5), [0, 1, 2], noise_mode="off")
    assert torch.equal(G.input.weight, before)  # a copy is filled, not the model
    u = spatial_uniformity(img, border=2)
    if padding == "none":  # valid convolutions and bilinear upsampling of a constant map stay constant
        assert u["spatial_std"] < 1e-5 and u["border_msd"] < 1e-9
    else:  # zero padding imprints structure that is strongest at the border (Xu Fig. 3)
        assert u["spatial_std"] > 1e-3 and u["border_msd"] > u["centre_msd"]


def test_uniform_constant_needs_a_constant_input():
    with pytest.raises(ValueError, match="not a learned constant"):
        uniform_constant(Generator(tiny_model(input="sinusoid")), 0.0)


def test_spatial_uniformity_separates_border_from_centre():
    flat = torch.zeros(2, 3, 16, 16)
    assert spatial_uniformity(flat, 4) == {"spatial_std": 0.0, "border_msd": 0.0, "centre_msd": 0.0}
    framed = flat.clone()
    framed[..., :2, :] = 1.0
    u = spatial_uniformity(framed, 4)
    # luma 1 on the top 2 rows, 0.5 elsewhere: mean 0.5625; the 4-px band holds the 32 bright pixels of its 192
    assert u["centre_msd"] == pytest.approx(0.0625 ** 2)
    assert u["border_msd"] == pytest.approx((32 * 0.4375 ** 2 + 160 * 0.0625 ** 2) / 192)


def test_larger_canvas_expands_or_zooms():
    G = Generator(tiny_model())
    expand, interp = (Canvas.multiscale(24, mode, 16).grid(G.default_grid()) for mode in ("expand", "interp"))
    assert expand.size == interp.size == (24, 24)
    assert expand.extent() == pytest.approx((24.0, 24.0))  # training spacing, more of the plane
    assert interp.extent() == pytest.approx((16.0, 16.0))  # same extent, denser


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Every study model name mapped to a 4-step tiny run of the right kind of generator."""
    root = tmp_path_factory.mktemp("study-runs")
    runs = {}
    for preset in ("digits-baseline", "digits-nopad", "digits-mspie", "digits-sg3t"):
        extra = ["train.multiscale.sizes=[16,24]", "train.multiscale.probs=[0.5,0.5]"] if preset == "digits-mspie" else []
        train(tiny_run(preset, *extra), root / preset, seed=1, progress=False)
        runs[preset] = str(root / preset)
    return {name: runs["digits-nopad" if name == "digits-nopad" else "digits-mspie" if "mspie" in name
                       else "digits-sg3t" if "sg3" in name else "digits-baseline"] for name in EVERY}


def test_study_writes_every_figure_and_its_numbers(tiny_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    settings = StudySettings(fid_samples=16, shift_samples=2, eq_samples=2, noise_draws=3, noise_latents=2,
                             models=tiny_runs, progress=False)
    out = tmp_path / "study"
    record = Study(out, settings).run(["f1", "f4", "f6"])
    for png in ("f1-shift-consistency.png", "f4-uniform-constant.png", "f6-mspie-fid.png", "f6-samples.png"):
        assert (out / png).stat().st_size > 1000, png
    assert json.loads((out / "study.json").read_text()) == json.loads(json.dumps(record))
    for name, r in record["f1"]["results"].items():
        for curve in r["curves"].values():  # shift 0 is the reference; rolling by the whole canvas is the identity
            assert len(curve) == 17 and curve[0] == pytest.approx(1.0) and curve[-1] == pytest.approx(1.0, abs=1e-4)
    f4 = record["f4"]["results"]
    assert f4["digits-nopad"]["fill 0.5"]["spatial_std"] < 1e-4 < f4["digits-baseline"]["fill 0.5"]["spatial_std"]
    f6 = record["f6"]["results"]
    assert f6["digits-mspie"]["canvas"] == "expand" and f6["digits-baseline"]["canvas"] == "interp"
    assert all(f6[n][s] > 0 for n in f6 for s in ("16", "24", "32"))


def test_f8_measures_eq_before_and_after_training_and_the_sticking_view(tiny_runs, tmp_path):
    settings = StudySettings(eq_samples=2, models=tiny_runs, progress=False)
    out = tmp_path / "study"
    record = Study(out, settings).run(["f8"])
    assert (out / "f8-sticking.png").stat().st_size > 1000
    results = record["f8"]["results"]
    assert set(results) == {"digits-baseline", "digits-mspe", "digits-mspe-nopad", "digits-sg3t", "digits-sg3r"}
    for r in results.values():
        assert set(r) == {"initialisation", "trained", "sticking_ratio"}
        assert all(math.isfinite(v) for when in ("initialisation", "trained") for v in r[when].values())
    # a 4-step run barely moves its weights: the fresh generator of the same config and seed scores alike
    # but not identically, and the alias-free generator is far more translation-equivariant than StyleGAN2
    sg3, sg2 = results["digits-sg3t"], results["digits-baseline"]
    assert sg3["initialisation"]["eqt"] != sg3["trained"]["eqt"]
    assert sg3["trained"]["eqt"] > sg2["trained"]["eqt"] + 10


def test_study_cli_checks_its_arguments_before_measuring(tmp_path, capsys):
    assert main(["study", "f9", "--out", str(tmp_path)]) == 2
    assert "unknown finding 'f9'" in capsys.readouterr().err
    assert main(["study", "f1", "--model", "digits-mspe", "--out", str(tmp_path)]) == 2
    assert "NAME=CHECKPOINT" in capsys.readouterr().err
    assert main(["study", "f1", "--model", "nonsense=x", "--out", str(tmp_path)]) == 2
    assert "not a model of the study" in capsys.readouterr().err
    assert main(["study", "f5", "--model", "digits-nopad=/no/such/run", "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "study.json").exists()  # nothing measured, nothing written


def test_evaluate_expand_renders_more_of_the_plane(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("POSGEN_CACHE", str(tmp_path / "cache"))
    lines = []
    for k, canvas in enumerate((["--zoom", "1.5"], ["--size", "24x24"])):  # the same lattice, zoomed or expanded
        out = tmp_path / f"e{k}.jsonl"
        assert main(["evaluate", "--checkpoint", str(trained_run), "--metrics", "fid", "--num-samples", "16",
                     "--out", str(out), *canvas]) == 0
        lines.append(json.loads(out.read_text()))
    assert lines[0]["size"] == lines[1]["size"] == [24, 24]
    assert (lines[0]["zoom"], lines[1]["zoom"]) == (1.5, 1.0)
    assert lines[0]["results"]["fid"]["fid"] != lines[1]["results"]["fid"]["fid"]


def test_a_figure_record_keeps_parts_another_run_wrote_into_the_same_folder_meanwhile(tmp_path):
    from posgen.apps._runner import FigureRun

    path = tmp_path / "study.json"
    path.write_text('{"f1": {"old": 1}, "f5": {"old": 1}}\n')

    def measure(part):  # while this run measures, another one into the folder finishes f5
        path.write_text('{"f1": {"old": 1}, "f5": {"new": 2}}\n')
        return {"measured": part}

    record = FigureRun(tmp_path, None).record_parts("study.json", ["f6"], measure)
    expected = {"f1": {"old": 1}, "f5": {"new": 2}, "f6": {"measured": "f6"}}
    assert json.loads(path.read_text()) == expected == record
