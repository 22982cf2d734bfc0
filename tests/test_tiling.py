"""Exact tiled rendering, the streaming PNG writer and the render memory budget (issue 17, items 3-4)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_PRESET, VARIANTS, tiny_model, tiny_run
from posgen.cli import main
from posgen.errors import CapabilityError, MemoryLimitError, UsageError
from posgen.families import FAMILIES, build_generator
from posgen.grid import Canvas, Grid
from posgen.memory import parse_bytes
from posgen.models.base import RenderOptions
from posgen.models.stylegan2 import Generator as StyleGAN2
from posgen.sampling import load, render_seeds
from posgen.tiling import PNGWriter, plan_tiles, tile_spans, tiles

NOPAD = ["digits-mspe-nopad", "digits-nopad", "digits-sspe-nopad", "digits-csg-nopad"]  # the shipped ones




def assert_seamless(tiled: torch.Tensor, whole: torch.Tensor) -> None:
    """Tiles equal the one-shot render to float rounding: bit for bit where the CPU's convolution and GEMM
    kernels sum in the same order for a tile as for the whole canvas (measured on AVX2), within a few ulp
    where they pick size-dependent kernels (1.2e-7 for CIPS on AVX-512). A seam or a misplaced tile is
    off by far more (test_a_misplaced_tile_is_caught)."""
    assert not torch.isnan(tiled).any(), "a pixel no tile wrote"
    assert (tiled - whole).abs().max().item() <= 1e-6


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: with more, oneDNN may also pick another convolution algorithm per tile size."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

def stitched(G, latent, grid, options=RenderOptions(), **kw) -> tuple[torch.Tensor, tuple[int, int], int]:
    """The canvas assembled from `tiles` (NaN where no tile wrote), the tile size and the number of tiles."""
    plan = plan_tiles(G, grid, options, **kw)
    out = torch.full((1, G.render(latent, Grid(1, 1)).shape[1], *grid.size), float("nan"))
    count = 0
    for top, left, image in tiles(G, latent, grid, plan, options):
        out[..., top:top + image.shape[-2], left:left + image.shape[-1]] = image
        count += 1
    return out, plan.size, count


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("posgen: error: ") and "Traceback" not in err, err
    return err


# ---- the PNG writer ---------------------------------------------------------------------------
def test_the_streamed_png_decodes_to_the_rows_written_in_any_bands(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    image[10:20] = image[9]  # repeated rows: the Up filter's zero differences
    path = tmp_path / "x.png"
    with open(path, "wb") as f:
        png = PNGWriter(f, 37, 53)
        for a, b in ((0, 1), (1, 11), (11, 30), (30, 37)):
            png.write(image[a:b])
        png.close()
    decoded = Image.open(path)
    assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded), image)


def test_the_png_writer_refuses_wrong_rows():
    import io

    png = PNGWriter(io.BytesIO(), 4, 5)
    with pytest.raises(ValueError, match="uint8"):
        png.write(np.zeros((2, 6, 3), np.uint8))
    png.write(np.zeros((3, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="height 4"):
        png.write(np.zeros((2, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="after 3 rows"):
        png.close()


# ---- exact tiles --------------------------------------------------------------------------------
def test_tile_spans_cover_the_side_once_and_widen_a_short_last_tile_to_the_minimum():
    assert tile_spans(200, 144, 8, 144) == [(0, 0, 144), (144, 56, 144)]
    assert tile_spans(328, 144, 8, 144) == [(0, 0, 144), (144, 144, 144), (288, 184, 144)]
    assert tile_spans(100, 144, 8, 144) == [(0, 0, 100)]
    for length, tile, stride, minimum in ((1000, 96, 8, 72), (37, 21, 1, 21), (333, 160, 16, 160)):
        covered = []
        for start, origin, n in tile_spans(length, tile, stride, minimum):
            assert origin % stride == 0 and origin <= start and (n >= minimum or n == length)
            covered += range(start, origin + n)
        assert covered == list(range(length))


def test_shipped_padding_free_models_tile_exactly():
    assert {name: load(name).G.tiling() for name in NOPAD} == {
        "digits-mspe-nopad": (8, 144), "digits-nopad": (8, 144), "digits-sspe-nopad": (8, 144),
        "digits-csg-nopad": (8, 816)}  # CSG: two input channels at 4x4 need larger tiles (models/base.py)
    G = load("digits-mspe-nopad").G
    z = G.latents([3])
    grid = Grid(200, 328)  # tiles of 144 divide neither side: 2 x 3 tiles, the last ones widened
    whole = G.render(z, grid)
    tiled, size, count = stitched(G, z, grid, tile=144)
    assert size == (144, 144) and count == 6
    assert_seamless(tiled, whole)


def test_a_misplaced_tile_is_caught():
    # the tolerance of assert_seamless is far below what a tile off the coarsest stride gets wrong: its
    # coarse lattices fall between the canvas's, so it draws other pixels at the same place
    G = load("digits-mspe-nopad").G
    stride, minimum = G.tiling()
    z = G.latents([3])
    grid = Grid(2 * minimum, 2 * minimum)
    whole = G.render(z, grid)
    for origin, exact in [(stride, True), (stride + 3, False)]:
        tile = G.render(z, grid.crop(origin, origin, minimum, minimum))
        delta = (tile - whole[..., origin:origin + minimum, origin:origin + minimum]).abs().max().item()
        assert (delta <= 1e-6) == exact, (origin, delta)
        if not exact:
            assert delta > 1e-2


@pytest.mark.parametrize("canvas", [Canvas(size=(300, 160), zoom=1.7, shift=(0.3, -5.25)),
                                    Canvas(size=(160, 176), rotate=30, shift=(3, 1))])
def test_tiles_are_exact_on_shifted_zoomed_rotated_grids(canvas):
    G = load("digits-mspe-nopad").G
    grid = canvas.grid(G.default_grid())
    z = G.latents([1])
    tiled, _, count = stitched(G, z, grid, tile=144)
    assert count > 1
    assert_seamless(tiled, G.render(z, grid))


@pytest.mark.parametrize("variant", ["mspe-nopad", "csg-ms-nopad"])  # a sinusoid, and a Cartesian grid at every scale
def test_every_padding_free_stylegan2_variant_tiles_exactly(variant):
    G = StyleGAN2(tiny_model(16, **VARIANTS[variant])).eval()
    stride, minimum = G.tiling()
    z = G.latents([0])
    grid = Grid(minimum + 3 * stride, 2 * minimum + stride)  # a 2 x 3 cut that divides neither side
    tiled, _, count = stitched(G, z, grid, tile=minimum)
    assert count == 6
    assert_seamless(tiled, G.render(z, grid))


def test_cips_tiles_exactly_at_any_origin():
    G = load("digits-cips").G
    assert G.tiling() == (1, 21)
    z = G.latents([2])
    grid = Canvas(size=(50, 70), shift=(0.5, 2)).grid(G.default_grid())
    tiled, size, count = stitched(G, z, grid, tile=23)
    assert size == (23, 23) and count == 12
    assert_seamless(tiled, G.render(z, grid))


def test_zero_padded_and_other_border_dependent_generators_are_refused_in_one_line():
    for name in ("digits-mspe", "singan-pad", "singan-nopad"):
        G = load(name).G
        with pytest.raises(CapabilityError, match=f"^{name} cannot be rendered tile by tile exactly: "):
            plan_tiles(G, G.default_grid(), model=name)
    G = load("digits-mspe-nopad").G
    with pytest.raises(CapabilityError, match="--noise random"):
        plan_tiles(G, Grid(64, 64), RenderOptions(noise_mode="random"))


# ---- the command: streamed PNG == the normal writer; refusals ----------------------------------
def test_generate_streams_tiles_into_a_png_equal_to_the_one_shot_image(tmp_path, capsys):
    args = ["generate", "--checkpoint", "digits-mspe-nopad", "--size", "200x328", "--seeds", "5"]
    assert main([*args, "--out", str(tmp_path / "tiled.png"), "--tile", "144"]) == 0
    assert "in 144x144 tiles" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0  # small enough: one shot, PIL's writer
    tiled = np.asarray(Image.open(tmp_path / "tiled.png"))
    assert tiled.shape == (200, 328, 3) and np.array_equal(tiled, np.asarray(Image.open(tmp_path / "whole" / "seed0005.png")))


def test_a_huge_canvas_on_a_zero_padded_model_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "x.png"
    err = one_line_error(capsys, ["generate", "--checkpoint", "digits-mspe", "--size", "20000x20000", "--out", str(out)])
    assert "rendering 1 image(s) of 20000x20000" in err and "--max-memory" in err
    err = one_line_error(capsys, ["generate", "--checkpoint", "digits-mspe", "--size", "512", "--tile", "144",
                                  "--out", str(out)])
    assert "digits-mspe cannot be rendered tile by tile exactly: its zero padding" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_memory_budget_refuses_in_one_line(tmp_path, capsys):
    err = one_line_error(capsys, ["generate", "--checkpoint", "digits-mspe", "--size", "1024", "--seeds", "0-3",
                                  "--max-memory", "64M", "--out", str(tmp_path / "d")])
    assert "more than the limit of 64.0M (--max-memory)" in err
    err = one_line_error(capsys, ["generate", "--checkpoint", "digits-mspe-nopad", "--size", "4096",
                                  "--max-memory", "16M", "--out", str(tmp_path / "x.png")])
    assert "in 144x144 tiles" in err and "the smallest exact tile here is 144" in err
    one_line_error(capsys, ["generate", "--checkpoint", "digits-mspe", "--max-memory", "lots", "--out", str(tmp_path / "d")])
    one_line_error(capsys, ["generate", "--checkpoint", "digits-mspe", "--seeds", "0-1", "--out", str(tmp_path / "x.png")])
    assert list(tmp_path.iterdir()) == []
    G = load("digits-mspe").G
    with pytest.raises(MemoryLimitError, match="rendering 4 image"):
        render_seeds(G, [0, 1, 2, 3], Grid(512, 512), max_memory=2**20)


def test_parse_bytes():
    assert parse_bytes("4G") == 4 * 2**30 and parse_bytes("512M") == 512 * 2**20 and parse_bytes("1.5g") == 3 * 2**29
    assert parse_bytes("800MB") == 800 * 2**20 and parse_bytes("2097152") == 2**21
    for bad in ("", "-1G", "4X", "nanG", "1K"):
        with pytest.raises(UsageError):
            parse_bytes(bad)


# ---- the estimate -----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_estimates_its_render_and_the_estimate_grows_with_batch_and_canvas(family):
    G = build_generator(tiny_run(TINY_PRESET[family], *(["model.image_size=[22,32]"] if family == "singan" else []))).eval()
    one = G.memory_estimate(1)
    assert one > 0 and G.memory_estimate(4) > one
    if "expand" in G.capabilities:
        h, w = G.default_grid().size
        assert G.memory_estimate(1, Grid(4 * h, 4 * w)) > 4 * one


PEAK = """
import json, sys, torch
from posgen.grid import Grid
from posgen.memory import peak_resident_bytes, reset_peak_resident, resident_bytes
from posgen.sampling import load
torch.set_grad_enabled(False)
G = load(sys.argv[1]).G
G.render(G.latents([0]), Grid(32, 32))  # warm up: lazy initialisation is not the render's
grid = Grid(int(sys.argv[2]), int(sys.argv[2]))
z = G.latents(list(range(int(sys.argv[3]))), grid)
base = resident_bytes()
reset_peak_resident()
G.render(z, grid)
peak = peak_resident_bytes() - base
print(json.dumps({"peak": peak, "estimate": G.memory_estimate(len(z), grid)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_the_estimate_is_honest_against_the_measured_peak():
    # one torch thread: with more, oneDNN's convolutions keep per-thread work buffers the estimate does
    # not model (measured 5x the estimate with 2 threads here: a known gap, README)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PEAK, "digits-mspe-nopad", "384", "2"], capture_output=True,
                         text=True, check=True, env=env)
    r = json.loads(out.stdout)
    # measured / estimated on this machine: 0.84-0.97 for StyleGAN2 (benchmarks/memory.py, README), up to 1.3
    # while other processes fragment the allocator
    assert 0.6 <= r["peak"] / r["estimate"] <= 1.5, r
