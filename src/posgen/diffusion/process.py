"""The Gaussian diffusion process of DDPM (Ho et al. 2020; Choi et al. App. B) and its samplers.

Kept apart from the network: everything here takes `eps_fn(x_t, t) -> predicted noise`, so the
same process serves any U-Net, on any grid. Timesteps are 0-based array indices: index `t` is
Ho et al.'s step t + 1 (the same numbering as the network's time input and as diffusers).

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)                       (Choi Eq. A, Ho Eq. 2)
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I), abar_t = prod_s (1 - beta_s)   (Ho Eq. 4)
    p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I)                             (Choi Eq. B, Ho Eq. 1)
    L_simple         = E || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2   (Ho Eq. 14)

Samplers walk a decreasing subsequence tau of the T timesteps (all of them by default):
"ddpm" is ancestral sampling (Ho Alg. 2), on a subsequence with the respaced betas
beta'_i = 1 - abar_{tau_i} / abar_{tau_{i-1}} (Nichol & Dhariwal Sec. 4); "ddim" is Song et al.'s
Eq. 12 with eta (0: deterministic). With every step and eta = 1 DDIM is DDPM with the posterior
variance sigma_t^2 = beta~_t (Ho Eq. 7); tests pin that.

Written in posgen rather than on diffusers' schedulers: the process is ~150 lines of tensor code,
diffusers is not installed here and would add a dependency that imports in about 7 s.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [N, C, H, W], t [N] long) -> eps [N, C, H, W]
Sampler = Literal["ddpm", "ddim"]
Variance = Literal["beta", "posterior"]
SAMPLERS: tuple[str, ...] = ("ddpm", "ddim")


def linear_betas(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s linear schedule (Sec. 4): beta_1 = 1e-4 .. beta_T = 0.02, float64 [T]."""
    if timesteps < 1 or not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need T >= 1 and 0 < beta_start <= beta_end < 1, got T={timesteps}, "
                         f"betas {beta_start}..{beta_end}")
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def timesteps(steps: int, start: int) -> list[int]:
    """A decreasing subsequence of `steps` indices from `start` down to 0 (both included, evenly
    spaced, rounded); all of them when steps >= start + 1."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if steps >= start + 1:
        return list(range(start, -1, -1))
    if steps == 1:
        return [start]
    return sorted({round(start * k / (steps - 1)) for k in range(steps)}, reverse=True)


def latent_generators(latents: torch.Tensor) -> list[torch.Generator]:
    """One RNG per sample, seeded by a digest of that sample's x_T: the noise of a stochastic sampler
    is then a function of the latent (hence of its seed), not of the batch it is rendered in."""
    out = []
    for x in latents.detach().to("cpu", torch.float32).contiguous():
        digest = hashlib.blake2b(x.numpy().tobytes(), digest_size=8).digest()
        out.append(torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1)))
    return out


def randn_like(x: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """Standard normal noise shaped like x: from one RNG, or one RNG per sample (a list)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if len(generator) != len(x):
        raise ValueError(f"{len(generator)} generators for a batch of {len(x)}")
    return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in generator]).to(x.device)


@dataclass(frozen=True)
class StepCoefficients:
    """One reverse step tau_i -> tau_{i-1} of a (respaced) schedule."""

    abar: float       # abar at tau_i
    abar_prev: float  # abar at tau_{i-1} (1 after the last step)


class GaussianDiffusion:
    """The fixed forward process and the reverse-process samplers of one beta schedule."""

    def __init__(self, betas: torch.Tensor, variance: Variance = "beta", clip: bool = True) -> None:
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor in (0, 1)")
        if variance not in ("beta", "posterior"):
            raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
        self.betas = betas.to(torch.float64)                            # [T]
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)       # abar_t, Ho Eq. 4
        self.num_timesteps = len(betas)
        self.variance, self.clip = variance, clip

    @classmethod
    def linear(cls, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, **kw) -> GaussianDiffusion:
        return cls(linear_betas(timesteps, beta_start, beta_end), **kw)

    # ---- forward process -----------------------------------------------------------------
    def _at(self, values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """values[t] as [N, 1, 1, 1] in x's dtype and device."""
        return values.to(x.device)[t.to(x.device)].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho Eq. 4); t [N] long."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, eps_fn: EpsFn, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """L_simple (Ho Eq. 14): mean squared error of the predicted noise, a scalar."""
        return torch.mean((noise - eps_fn(self.q_sample(x0, t, noise), t)) ** 2)

    # ---- reverse process -----------------------------------------------------------------
    def coefficients(self, seq: Sequence[int]) -> list[StepCoefficients]:
        ab = self.alphas_cumprod.tolist()
        return [StepCoefficients(ab[t], ab[seq[i + 1]] if i + 1 < len(seq) else 1.0) for i, t in enumerate(seq)]

    def predict_x0(self, x: torch.Tensor, eps: torch.Tensor, abar: float) -> torch.Tensor:
        """x_0 implied by eps (Ho Eq. 4 solved for x_0), clipped to [-1, 1] when `clip`."""
        x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
        return x0.clamp(-1, 1) if self.clip else x0

    def ddpm_step(self, x: torch.Tensor, x0: torch.Tensor, c: StepCoefficients, noise: torch.Tensor) -> torch.Tensor:
        """x_{t-1} ~ N(mu~(x_t, x_0), sigma^2): the posterior mean (Ho Eq. 7) with the predicted x_0,
        which is Ho Eq. 11 when nothing is clipped; sigma^2 = beta' or beta~' of the respaced step."""
        beta = 1 - c.abar / c.abar_prev                                   # beta'_i
        mean = (math.sqrt(c.abar_prev) * beta / (1 - c.abar)) * x0 + \
               (math.sqrt(1 - beta) * (1 - c.abar_prev) / (1 - c.abar)) * x  # Ho Eq. 7
        if c.abar_prev == 1.0:  # the last step returns the mean (Ho Alg. 2: z = 0 at t = 1)
            return mean
        var = beta if self.variance == "beta" else beta * (1 - c.abar_prev) / (1 - c.abar)
        return mean + math.sqrt(var) * noise

    def ddim_step(self, x: torch.Tensor, x0: torch.Tensor, c: StepCoefficients, noise: torch.Tensor,
                  eta: float) -> torch.Tensor:
        """Song et al. Eq. 12 with sigma from their Eq. 16 (times eta); eps is re-derived from the
        (possibly clipped) x_0 so the direction term stays consistent with it."""
        eps = (x - math.sqrt(c.abar) * x0) / math.sqrt(1 - c.abar)
        sigma = eta * math.sqrt((1 - c.abar_prev) / (1 - c.abar) * (1 - c.abar / c.abar_prev))  # Song Eq. 16
        out = math.sqrt(c.abar_prev) * x0 + math.sqrt(max(1 - c.abar_prev - sigma**2, 0.0)) * eps
        return out + sigma * noise if sigma > 0 else out

    @torch.no_grad()
    def sample(self, eps_fn: EpsFn, x: torch.Tensor, *, start: int | None = None, steps: int | None = None,
               sampler: Sampler = "ddpm", eta: float = 0.0,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               on_step: Callable[[int], None] | None = None) -> torch.Tensor:
        """Run the reverse process from x = x_start (default x_T, start = T - 1) to x_0.

        steps: how many network evaluations (default all start + 1); sampler: "ddpm" (ancestral,
        Ho Alg. 2, respaced when steps < start + 1) or "ddim" (Song Eq. 12, `eta`); generator: one RNG
        or one per sample for the stochastic parts; on_step(i) after each step.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
        start = self.num_timesteps - 1 if start is None else start
        if not 0 <= start < self.num_timesteps:
            raise ValueError(f"start must be in [0, {self.num_timesteps - 1}], got {start}")
        seq = timesteps(steps or start + 1, start)
        stochastic = sampler == "ddpm" or eta > 0
        for i, (t, c) in enumerate(zip(seq, self.coefficients(seq))):
            tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
            x0 = self.predict_x0(x, eps_fn(x, tt), c.abar)
            noise = randn_like(x, generator) if stochastic and c.abar_prev < 1.0 else None
            x = self.ddpm_step(x, x0, c, noise) if sampler == "ddpm" else self.ddim_step(x, x0, c, noise, eta)
            if on_step is not None:
                on_step(i)
        return x
