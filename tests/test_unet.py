"""The DDPM U-Net and its generator (posgen.models.unet): shapes on non-square grids, MS-PE that
moves with the grid, determinism per seed, capability refusals."""
from __future__ import annotations

import pytest
import torch

from posgen.errors import CapabilityError
from posgen.grid import Grid, PointGrid
from posgen.models.base import RenderOptions
from posgen.models.unet import DDPM, UNet, UNetConfig, timestep_embedding
from posgen.sampling import render_seeds


def tiny(pe: str = "sinusoid", **kw) -> UNetConfig:
    base = dict(resolution=16, channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, norm_groups=4,
                positional_encoding=pe, timesteps=20, ddpm_steps=20, ddim_steps=4)
    return UNetConfig(**{**base, **kw})


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    """Zero-initialised output layers make a fresh U-Net predict 0 everywhere; give every weight a value."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module


def test_timestep_embedding_golden_values():
    e = timestep_embedding(torch.tensor([0, 3]), 8)
    assert e.shape == (2, 8)
    assert e[0].tolist() == pytest.approx([0, 0, 0, 0, 1, 1, 1, 1])
    freqs = [10000 ** (-k / 3) for k in range(4)]
    assert e[1, :4].tolist() == pytest.approx([torch.sin(torch.tensor(3 * f)).item() for f in freqs], abs=1e-6)


@pytest.mark.parametrize("pe", ["none", "sinusoid"])
def test_unet_shapes_on_non_square_and_odd_grids(pe):
    net = _randomise(UNet(tiny(pe)))
    for size in ((16, 16), (12, 40), (17, 9)):
        x = torch.randn(2, 3, *size)
        out = net(x, torch.tensor([0, 19]), Grid(*size))
        assert out.shape == x.shape and torch.isfinite(out).all()


def test_mspe_layout_and_gamma():
    net = UNet(tiny())
    encs = net.encodings(Grid(16, 16), "cpu")
    # after the blocks of levels at strides 1, 2, 4 and after the upsamplings to strides 2 and 1
    assert [tuple(e.shape) for e in encs] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 8, 8), (1, 16, 16, 16)]
    gammas = [n for n, _ in net.named_parameters() if n.endswith("gamma")]
    assert len(gammas) == 5
    assert UNet(tiny("none")).encodings(Grid(16, 16), "cpu") == []
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(tiny(channels=6))


def test_a_shift_of_the_grid_shifts_every_encoding_by_shift_over_stride():
    net = UNet(tiny())
    base = net.encodings(Grid(16, 16), "cpu")
    moved = net.encodings(Grid(16, 16).shift(4, 8), "cpu")  # 4 down, 8 right: whole pixels at every stride
    for a, b, stride in zip(base, moved, (1, 2, 4, 2, 1)):
        dy, dx = 4 // stride, 8 // stride
        assert torch.allclose(b[..., dy:, dx:], a[..., :a.shape[-2] - dy, :a.shape[-1] - dx], atol=1e-5)
    # the denoiser sees the moved encodings (GroupNorm and attention are global, so it is not exactly
    # equivariant: the generator-level shift behaviour is measured by apps.reconstruct, not asserted here)
    net = _randomise(UNet(tiny()))
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([5])
    assert torch.equal(net(x, t, Grid(16, 16).shift(0, 0)), net(x, t, Grid(16, 16)))
    assert not torch.allclose(net(x, t, Grid(16, 16).shift(4, 8)), net(x, t, Grid(16, 16)), atol=1e-3)


def test_generator_renders_deterministically_per_seed():
    G = _randomise(DDPM(tiny())).eval()
    a = render_seeds(G, [1, 2, 3], batch_size=3)
    assert a.shape == (3, 3, 16, 16) and torch.isfinite(a).all() and a.abs().max() <= 1.0 + 1e-6
    assert torch.allclose(render_seeds(G, [2], batch_size=1), a[1:2], atol=1e-5)
    assert torch.equal(render_seeds(G, [1, 2, 3], batch_size=3), a)
    assert torch.allclose(render_seeds(G, [1, 2, 3], batch_size=2), a, atol=1e-5)
    ddim = render_seeds(G, [1, 2], sampler="ddim", steps=4)
    assert torch.equal(ddim, render_seeds(G, [1, 2], sampler="ddim", steps=4))
    assert not torch.allclose(ddim, a[:2])
    wide = render_seeds(G, [1], Grid(16, 24))
    assert wide.shape == (1, 3, 16, 24)
    assert G.latents([4], Grid(5, 7)).shape == (1, 3, 5, 7)


def test_render_defaults_and_steps_come_from_the_config():
    G = _randomise(DDPM(tiny(sampler="ddim"))).eval()
    assert G.sampler_settings(RenderOptions()) == ("ddim", 4)
    assert G.sampler_settings(RenderOptions(sampler="ddpm")) == ("ddpm", 20)
    assert G.sampler_settings(RenderOptions(steps=20)) == ("ddim", 20)  # at most T ...
    with pytest.raises(CapabilityError, match="--steps must be between 1 and the model's 20 timesteps, got 500"):
        G.sampler_settings(RenderOptions(steps=500))  # ... beyond is refused, not silently clamped
    with pytest.raises(CapabilityError, match="sampler must be one of ddpm, ddim"):
        G.sampler_settings(RenderOptions(sampler="euler"))
    calls = []
    G.diffusion.sample(G.eps_fn(Grid(16, 16), torch.device("cpu")), torch.randn(1, 3, 16, 16), steps=3,
                       sampler="ddim", on_step=calls.append)
    assert calls == [0, 1, 2]


def test_capabilities_and_refusals():
    mspe, base = DDPM(tiny()), DDPM(tiny("none"))
    assert mspe.capabilities == {"shift", "expand", "steps"} and base.capabilities == {"expand", "steps"}
    lat = mspe.latents([0])
    for G in (mspe, base):
        with pytest.raises(CapabilityError, match="^truncation_psi needs a generator with a mapping network; this is a ddpm model$"):
            G.render(lat, None, RenderOptions(truncation_psi=0.5))
        with pytest.raises(CapabilityError, match="^noise_mode needs"):
            G.render(lat, None, RenderOptions(noise_mode="random"))
        with pytest.raises(CapabilityError):
            G.render(lat, PointGrid.from_grid(Grid(16, 16)))
    with pytest.raises(CapabilityError, match="^--shift needs a generator that renders on shifted grids; m is a ddpm model$"):
        from posgen.options import grid_for
        from posgen.grid import Canvas

        grid_for(base, Canvas(shift=(1, 1)), "m")
    with pytest.raises(ValueError, match="latents of"):
        mspe.render(lat, Grid(16, 20))
