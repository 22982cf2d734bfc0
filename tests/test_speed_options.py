"""The speed options (posgen.training.precision: train.precision, channels_last; posgen.data.loader:
data.workers) on tiny CPU runs: what they change, and what they must not."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_run
from PIL import Image

from posgen.data.images import ImageFolderDataset
from posgen.data.loader import StepBatches
from posgen.errors import DataError
from posgen.ops.equalized import EqualConv2d
from posgen.training.loop import build_trainer
from posgen.training.precision import CONV_CLAMP, Precision


def test_fp16_clamps_conv_outputs_and_fp32_does_not():
    conv = EqualConv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.full((1, 1, 2, 2), 1000.0)
    Precision("fp32", "cpu").prepare(conv, channels_last=False)
    assert conv(x).max().item() > 999
    Precision("fp16", "cpu").prepare(conv, channels_last=False)
    assert conv(x).max().item() == CONV_CLAMP


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes_its_scaler(precision):
    tr = build_trainer(tiny_run("digits-mspe", f"train.precision={precision}"), seed=0)
    for _ in range(2):
        stats = tr.train_step()
    assert all(np.isfinite(v) for v in stats.values())
    assert all(p.dtype == torch.float32 for p in tr.G.parameters())  # autocast: fp32 master weights
    tensors = tr.state_tensors()
    assert ("scaler_G.scale" in tensors) == (precision == "fp16")
    again = build_trainer(tiny_run("digits-mspe", f"train.precision={precision}"), seed=0)
    again.restore(tensors, {"step": tr.step})
    assert again.scaler_G.get_scale() == tr.scaler_G.get_scale()
    a, b = tr.train_step(), again.train_step()
    assert a == b  # a resumed mixed-precision run continues exactly


def test_channels_last_changes_the_layout_not_the_numbers():
    plain = build_trainer(tiny_run("digits-mspe"), seed=0)
    nhwc = build_trainer(tiny_run("digits-mspe", "train.channels_last=true"), seed=0)
    assert nhwc.D.fromrgb.weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        a, b = plain.train_step(), nhwc.train_step()
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def test_workers_read_the_same_batches_and_restart_on_resume(folder):
    ds = ImageFolderDataset(folder, (8, 8))
    indices = lambda k: torch.tensor([k % 6, (2 * k + 1) % 6, 5])  # noqa: E731
    direct = [torch.stack([ds[int(i)] for i in indices(k)]) for k in range(5)]
    ahead = StepBatches(ds, indices, workers=2)
    assert all(torch.equal(ahead.batch(k), direct[k]) for k in range(3))
    assert torch.equal(ahead.batch(1), direct[1])  # out of sequence (a resume): reads from there
    assert torch.equal(ahead.batch(2), direct[2]) and torch.equal(ahead.batch(4 - 1), direct[3])


def test_a_bad_image_in_a_worker_is_one_line(folder):
    (folder / "3.png").write_bytes(b"not a png")
    ahead = StepBatches(ImageFolderDataset(folder, (8, 8)), lambda k: torch.arange(6), workers=1)
    with pytest.raises(DataError) as e:
        ahead.batch(0)
    assert "\n" not in str(e.value) and "3.png" in str(e.value)
