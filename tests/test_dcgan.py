"""DCGAN (models/dcgan.py): Xu Tab. 3-4 settings, padding-free margins, the encoding at the input map,
and training through the shared GAN trainer."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import tiny_run
from posgen import checkpoint
from posgen.grid import Grid
from posgen.models.dcgan import ARCHITECTURES, DCGANConfig, Generator, dcgan_margins
from posgen.ops.equalized import EqualConv2d
from posgen.sampling import render_seeds
from posgen.training.loop import train


def tiny(**kw) -> Generator:
    G = Generator(DCGANConfig(resolution=16, z_dim=8, channel_base=64, channel_max=16, **kw)).eval()
    return G.requires_grad_(False)


def test_padding_free_margins_cover_every_valid_conv():
    assert dcgan_margins(3) == [2, 2, 2, 1]
    assert dcgan_margins(3, ARCHITECTURES["pggan"]) == [3, 3, 2, 0]
    for arch in ARCHITECTURES.values():
        k = arch.convs_per_block
        for blocks in range(1, 6):
            m = dcgan_margins(blocks, arch)
            # 2x bilinear upsampling of margin m is valid to 2m - 1, which must cover the k convs' output margin + k
            assert all(2 * m[b] - 1 >= m[b + 1] + k for b in range(blocks)) and m[-1] == (arch.rgb_kernel - 1) // 2


@pytest.mark.parametrize("architecture", ["dcgan", "pggan"])
@pytest.mark.parametrize("padding", ["zero", "none"])
@pytest.mark.parametrize("encoding", ["none", "sinusoid", "cartesian"])
def test_every_setting_renders_its_canvas(padding, encoding, architecture):
    G = tiny(padding=padding, encoding=encoding, architecture=architecture)
    img = render_seeds(G, [0, 1])
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert img.abs().max() <= 1 if architecture == "dcgan" else img.std() > 0  # PGGAN's output is linear
    with pytest.raises(ValueError, match="training canvas only"):
        G.render(G.latents([0]), Grid(16, 24))


def test_padding_free_convs_never_see_a_padded_zero():
    G = tiny(padding="none")
    convs = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.padding == (0, 0) for c in convs)
    assert G.fc.out_features == 16 * (4 + 2 * 2) ** 2  # the 4x4 map with its margin of 2
    assert all(c.padding == (1, 1) for c in tiny(padding="zero").modules() if isinstance(c, nn.Conv2d))
    P = tiny(padding="none", architecture="pggan")
    convs = [m for m in P.modules() if isinstance(m, EqualConv2d)]
    assert len(convs) == 1 + 2 * 2 + 1 and all(c.padding == 0 for c in convs)  # 4x4 conv, 2 blocks of 2, toRGB
    assert P.fc.weight.shape[0] == 16 * (4 + 2 * (3 + 1)) ** 2  # the 4x4 map, its margin of 3 and the 4x4 conv's 1
    assert [c.padding for c in tiny(padding="zero", architecture="pggan").modules()
            if isinstance(c, EqualConv2d)] == [1] * 5 + [0]


def test_pggan_features_are_pixel_normalised():
    P = tiny(architecture="pggan")
    feats = P.blocks[0](torch.randn(2, 16, 8, 8) * 5)  # a block ends with pixel norm
    assert feats.shape == (2, 8, 8, 8)
    assert torch.allclose(feats.square().mean(dim=1), torch.ones(2, 8, 8), atol=1e-4)


def test_the_encoding_enters_at_the_input_map():
    G = tiny(padding="none", encoding="sinusoid")
    coords = G.default_grid().scale_coords(4, 2)
    pe = G.encoding(coords)
    assert pe.shape == (1, 16, 8, 8)
    # the sinusoid of the 4x4 lattice: pixel (a, b) has coordinate (b, a) from -2 on (Xu Eq. 8, raw indices)
    assert torch.allclose(pe[0, 0], torch.sin(torch.arange(-2.0, 6.0)).view(-1, 1).expand(8, 8), atol=1e-6)
    z = G.latents([3])
    with_pe = G(z)
    G.encoding = None
    assert not torch.allclose(G(z), with_pe)


def test_trains_through_the_shared_gan_trainer(tmp_path):
    out = tmp_path / "dcgan"
    train(tiny_run("digits-dcgan-nopad-spe"), out, seed=1, progress=False)
    tensors, cfg, state = checkpoint.load(out)
    assert cfg.family == "dcgan" and state["step"] == 4
    assert not any(k.startswith("G.mapping") for k in tensors)
    G, _, _ = checkpoint.load_generator(out)
    assert torch.allclose(render_seeds(G, [4, 5], batch_size=2)[1:], render_seeds(G, [5], batch_size=1), atol=1e-5)
