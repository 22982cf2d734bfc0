"""The diffusion process (posgen.diffusion): schedule golden values, forward-process statistics,
the samplers' algebra (DDIM with every step and eta = 1 is DDPM with the posterior variance) and
determinism per seed."""
from __future__ import annotations

import math

import pytest
import torch

from posgen.diffusion import GaussianDiffusion, latent_generators, linear_betas, randn_like, timesteps


def test_linear_schedule_golden_values():
    b = linear_betas()
    assert len(b) == 1000 and b.dtype == torch.float64
    assert b[0].item() == pytest.approx(1e-4, abs=1e-15) and b[-1].item() == pytest.approx(0.02, abs=1e-15)
    assert b[1].item() == pytest.approx(1e-4 + 0.0199 / 999, rel=1e-12)
    d = GaussianDiffusion(b)
    # abar_T of Ho et al.'s schedule: x_T keeps sqrt(4.0358e-5) = 0.00635 of x_0
    assert d.alphas_cumprod[-1].item() == pytest.approx(4.0358297653756754e-05, rel=1e-9)
    assert d.alphas_cumprod[499].item() == pytest.approx(0.07858724288177821, rel=1e-9)
    assert torch.all(d.alphas_cumprod[1:] < d.alphas_cumprod[:-1])
    with pytest.raises(ValueError):
        linear_betas(10, 0.02, 1e-4)


def test_timestep_subsequences():
    assert timesteps(1000, 999) == list(range(999, -1, -1))
    assert timesteps(5000, 9) == list(range(9, -1, -1))
    seq = timesteps(50, 999)
    assert len(seq) == 50 and seq[0] == 999 and seq[-1] == 0 and seq == sorted(seq, reverse=True)
    assert timesteps(3, 10) == [10, 5, 0] and timesteps(1, 7) == [7]


def test_q_sample_statistics():
    d = GaussianDiffusion.linear()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((4000, 1, 2, 2), 0.7, dtype=torch.float64)
    for t in (0, 250, 999):
        xt = d.q_sample(x0, torch.full((4000,), t), torch.randn(x0.shape, generator=g, dtype=torch.float64))
        ab = d.alphas_cumprod[t].item()
        assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.02)   # Ho Eq. 4
        assert xt.var().item() == pytest.approx(1 - ab, abs=0.03)
    # per-sample t: each row gets its own coefficient
    t = torch.tensor([0, 999])
    out = d.q_sample(torch.ones(2, 1, 1, 1), t, torch.zeros(2, 1, 1, 1))
    assert out.flatten().tolist() == pytest.approx([math.sqrt(1 - 1e-4), math.sqrt(4.0358297653756754e-05)])


def test_loss_is_zero_for_the_true_noise_and_mse_otherwise():
    d = GaussianDiffusion.linear()
    x0, noise, t = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4), torch.tensor([5, 50, 500])
    oracle = lambda xt, tt: (xt - d._at(d.alphas_cumprod, tt, xt).sqrt() * x0) / (1 - d._at(d.alphas_cumprod, tt, xt)).sqrt()
    assert d.loss(oracle, x0, t, noise).item() < 1e-10
    assert d.loss(lambda xt, tt: torch.zeros_like(xt), x0, t, noise).item() == pytest.approx(noise.pow(2).mean().item())


def _eps_fn(xt, t):  # a fixed smooth "network": depends on x and t
    return 0.3 * torch.tanh(xt) + 0.001 * t.view(-1, 1, 1, 1).to(xt.dtype)


def test_ddim_with_every_step_and_eta_one_is_ddpm_with_the_posterior_variance():
    T = 50
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for clip in (False, True):
        ddpm = GaussianDiffusion.linear(T, 1e-3, 0.2, variance="posterior", clip=clip)
        a = ddpm.sample(_eps_fn, x, sampler="ddpm", generator=torch.Generator().manual_seed(3))
        b = ddpm.sample(_eps_fn, x, sampler="ddim", eta=1.0, generator=torch.Generator().manual_seed(3))
        assert torch.allclose(a, b, atol=1e-10)
    # with sigma^2 = beta (Ho's other choice) the samples differ
    beta = GaussianDiffusion.linear(T, 1e-3, 0.2, variance="beta", clip=False)
    c = beta.sample(_eps_fn, x, sampler="ddpm", generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(a, c, atol=1e-3)


def test_one_ddpm_step_matches_ho_eq_11_without_clipping():
    d = GaussianDiffusion.linear(clip=False)
    x, eps = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    t = 400
    c = d.coefficients([t, t - 1])[0]
    beta, ab = d.betas[t].item(), d.alphas_cumprod[t].item()
    mean = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)  # Ho Eq. 11
    out = d.ddpm_step(x, d.predict_x0(x, eps, c.abar), c, torch.zeros_like(x))
    assert torch.allclose(out, mean, atol=1e-10)


def test_ddim_eta_zero_is_deterministic_and_inverts_a_perfect_denoiser():
    d = GaussianDiffusion.linear()
    x0 = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 1.6 - 0.8
    t = torch.full((2,), 999)
    xt = d.q_sample(x0, t, torch.randn_like(x0))
    oracle = lambda x, tt: (x - d._at(d.alphas_cumprod, tt, x).sqrt() * x0) / (1 - d._at(d.alphas_cumprod, tt, x)).sqrt()
    out = d.sample(oracle, xt, steps=10, sampler="ddim")
    assert torch.allclose(out, x0, atol=1e-8)
    # ancestral sampling with the oracle also lands on x0 (the last step returns the mean)
    out = d.sample(oracle, xt, steps=20, sampler="ddpm", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-6)


def test_samplers_are_deterministic_per_seed_and_independent_of_the_batch():
    d = GaussianDiffusion.linear(100)
    x = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    runs = [d.sample(_eps_fn, x, sampler="ddpm", generator=latent_generators(x)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    alone = d.sample(_eps_fn, x[1:2], sampler="ddpm", generator=latent_generators(x[1:2]))
    assert torch.allclose(runs[0][1:2], alone, atol=1e-6)
    other = d.sample(_eps_fn, x, sampler="ddpm", generator=torch.Generator().manual_seed(9))
    assert not torch.allclose(runs[0], other)
    # steps and start
    calls = []
    d.sample(_eps_fn, x, steps=7, sampler="ddim", on_step=calls.append)
    assert calls == list(range(7))
    calls.clear()
    d.sample(_eps_fn, x, start=30, sampler="ddpm", generator=torch.Generator(), on_step=calls.append)
    assert len(calls) == 31
    with pytest.raises(ValueError, match="sampler"):
        d.sample(_eps_fn, x, sampler="euler")


def test_randn_like_per_sample_generators():
    x = torch.zeros(2, 3)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    out = randn_like(x, gens)
    assert torch.equal(out[0], torch.randn(3, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError):
        randn_like(torch.zeros(3, 3), gens)
