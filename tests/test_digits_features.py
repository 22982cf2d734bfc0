"""The digits feature network (FID / KID / P&R features for colour digits): shipped weights,
preprocessing, held-out accuracy, position sensitivity, error messages."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posgen.metrics.digits_features import (
    DigitsFeatureNet,
    heldout_glyphs,
    load_digits_extractor,
    load_glyphs,
    render_digits,
    save_weights,
    shipped_weights,
)
from posgen.errors import MetricError


@pytest.fixture(scope="module")
def net() -> DigitsFeatureNet:
    return load_digits_extractor()


def _canvas(glyph: np.ndarray, size: int = 32, digit: int = 16, top: int = 0, left: int = 0,
            color=(1.0, 0.3, 0.3)) -> torch.Tensor:
    """One glyph drawn like make_biased_digits: [1, 3, size, size] in [-1, 1]."""
    g = F.interpolate(torch.from_numpy(glyph)[None, None], size=(digit, digit), mode="bicubic", align_corners=False)
    img = torch.zeros(1, 3, size, size)
    img[0, :, top:top + digit, left:left + digit] = g[0].clamp(0, 1) * torch.tensor(color)[:, None, None]
    return img * 2 - 1


def test_shipped_weights_load(net):
    assert shipped_weights().is_file()
    assert shipped_weights().stat().st_size < 2 * 1024 * 1024
    assert net.name == "digits" and net.feature_dim == 128
    assert not net.training
    facts = net.training_facts
    assert facts["heldout_accuracy"] >= 0.97
    assert facts["heldout_glyphs"] == heldout_glyphs(facts["seed"]).tolist()


def test_shape_dtype_and_determinism(net):
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = net(x)
    assert f.shape == (5, net.feature_dim) and f.dtype == torch.float32
    assert torch.isfinite(f).all()
    assert torch.equal(f, net(x))
    assert torch.equal(f, load_digits_extractor()(x))
    assert net.logits(x).shape == (5, 10)
    assert net(x.double()).dtype == torch.float32


def test_grey_one_channel_equals_three(net):
    glyphs, _ = load_glyphs()
    grey = torch.cat([_canvas(glyphs[i], color=(1.0, 1.0, 1.0))[:, :1] for i in range(4)])
    assert torch.allclose(net(grey), net(grey.repeat(1, 3, 1, 1)), atol=1e-6)


@pytest.mark.parametrize("hw", [(32, 32), (48, 48), (64, 64), (48, 96)])
def test_any_input_size(net, hw):
    glyphs, labels = load_glyphs()
    h, w = hw
    img = torch.full((1, 3, h, w), -1.0)
    img[:, :, :h, :h] = _canvas(glyphs[0], size=h, digit=h // 2, top=h // 4, left=h // 4)
    f = net(img)
    assert f.shape == (1, net.feature_dim) and torch.isfinite(f).all()
    assert net.logits(img).argmax(1).item() == labels[0]


def test_bad_input_shape(net):
    with pytest.raises(MetricError):
        net(torch.zeros(2, 2, 32, 32))


def test_heldout_accuracy(net):
    glyphs, labels = load_glyphs()
    heldout = heldout_glyphs(net.training_facts["seed"])
    rng = np.random.default_rng(2024)
    idx = rng.choice(heldout, 400)
    with torch.no_grad():
        x = render_digits(glyphs[idx], rng, net)
        pred = net.classifier(net.features_of(x)).argmax(1)
    acc = (pred == torch.from_numpy(labels[idx])).float().mean().item()
    assert acc >= 0.95, acc
    # the exact biased-digits look (default config), held-out glyphs only
    sub = rng.choice(heldout, 100, replace=False)
    x = torch.cat([_canvas(glyphs[i], color=(0.3, 0.9, 0.3)) for i in sub])
    acc = (net.logits(x).argmax(1) == torch.from_numpy(labels[sub])).float().mean().item()
    assert acc >= 0.95, acc


def test_features_see_position(net):
    glyphs, _ = load_glyphs()
    for i in range(5):
        a = net(_canvas(glyphs[i]))
        moved = net(_canvas(glyphs[i], top=16, left=16))
        tiny = net(_canvas(glyphs[i], color=(0.98, 0.3, 0.3)))
        d_move, d_tiny = (a - moved).norm().item(), (a - tiny).norm().item()
        assert d_move > 10 * d_tiny, (i, d_move, d_tiny)


def test_missing_and_bad_weights(tmp_path):
    with pytest.raises(MetricError) as e:
        load_digits_extractor(weights=tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(MetricError) as e:
        load_digits_extractor(weights=bad)
    assert "\n" not in str(e.value)
    untrained = tmp_path / "untrained.safetensors"
    save_weights(DigitsFeatureNet(), untrained, training={"seed": 0})  # lacks the training facts
    with pytest.raises(MetricError) as e:
        load_digits_extractor(weights=untrained)
    assert "training facts" in str(e.value) and "\n" not in str(e.value)
