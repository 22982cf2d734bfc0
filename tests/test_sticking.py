"""Texture-sticking view (posgen.apps.sticking): the ratio separates moving from stuck detail."""
import numpy as np
import pytest
import torch
from PIL import Image

from posgen.apps.sticking import StickingConfig, sticking_ratio, trace
from posgen.cli import main
from posgen.errors import UsageError


def _texture(h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, h, w, generator=g) * 2 - 1


def test_stuck_frames_score_one_and_moving_frames_score_low():
    tex = _texture(16, 48)
    stuck = tex[None].repeat(16, 1, 1, 1)
    assert sticking_ratio(stuck, 16.0) == pytest.approx(1.0, abs=1e-6)
    # content moving by one whole pixel per frame (16 px in all): each frame is the texture rolled
    moving = torch.stack([torch.roll(tex, shifts=f, dims=2) for f in range(16)])
    assert sticking_ratio(moving, 16.0) < 0.15


def test_trace_follows_the_busiest_row():
    frames = torch.full((4, 3, 8, 8), -1.0)
    frames[:, :, 5, ::2] = 1.0  # a striped row 5; the rest flat
    t = trace(frames)
    assert t.shape == (3, 4, 8)
    assert torch.equal(t[:, 0], frames[0, :, 5])


def test_pan_leaving_no_column_is_refused():
    with pytest.raises(UsageError, match="--pan"):
        sticking_ratio(torch.zeros(4, 3, 8, 8), 7.0)
    with pytest.raises(UsageError, match="--frames"):
        StickingConfig(frames=1).validate()


def test_cli_writes_one_row_per_model(tmp_path, capsys):
    out = tmp_path / "stick.png"
    assert main(["sticking", "--checkpoint", "digits-mspe-nopad", "--checkpoint", "digits-baseline",
                 "--frames", "8", "--pan", "4", "--upscale", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    ratios = [float(line.rsplit(" ", 1)[1]) for line in lines[:2]]
    assert all(0 < r < 1.5 for r in ratios)
    img = np.asarray(Image.open(out))
    # two rows of [32 | 2 | 32 | 2 | 32 (trace of 8 frames padded to 32) | 2] with a 2-px gap below each
    assert img.shape == (2 * (32 + 2), 3 * (32 + 2), 3)


def test_cli_refuses_a_non_png_output(tmp_path, capsys):
    assert main(["sticking", "--checkpoint", "digits-mspe-nopad", "--out", str(tmp_path / "x.gif")]) == 2
    assert ".png" in capsys.readouterr().err
