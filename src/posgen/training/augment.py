"""Adaptive discriminator augmentation after Karras et al., *Training Generative Adversarial
Networks with Limited Data* (StyleGAN2-ADA, NeurIPS 2020).

Every image the discriminator sees, real or generated, passes through the same stochastic
augmentation `Augment`; each transform is applied to each image independently with probability
p (times its multiplier). Because the generated images are augmented too (differentiably, so
the gradients reach G), D judges augmented distributions and G still learns the clean one, as
long as the augmentations do not "leak" (Sec. 2.2): the augmented distribution must determine
the clean one. For transforms applied with probability p < 1 that is the case in theory; in
practice the paper measures leaks above about p = 0.8 for the geometric and colour transforms
(Sec. 2.3, Fig. 4). Geometric transforms move image content, and this toolkit's data is
spatially biased on purpose (the digits live in one corner, Choi et al. App. C.1), so their
probability is capped lower still (`AugmentConfig.geometric_p_max`, default 0.6): most images D
sees keep their content where the data has it, and the corner is still learned.

The transforms and their strengths are the paper's (App. B, the "bgc" pipeline without rotate90,
anisotropic and fractional translation, plus cutout); x-flip is off by default here (see
`AugmentConfig.xflip`):

| group     | transform            | parameter                                   |
|-----------|----------------------|---------------------------------------------|
| geometric | x-flip               | flip with probability 1/2 when applied      |
| geometric | integer translation  | t ~ U(-0.125, 0.125) x size, rounded        |
| geometric | isotropic scaling    | s ~ lognormal(0, (0.2 ln 2)^2)              |
| geometric | rotation             | theta ~ U(-pi, pi)                          |
| colour    | brightness           | b ~ N(0, 0.2^2), added                      |
| colour    | contrast             | c ~ lognormal(0, (0.5 ln 2)^2), multiplied  |
| colour    | hue rotation         | theta ~ U(-pi, pi) about the luma axis      |
| colour    | saturation           | s ~ lognormal(0, (ln 2)^2) off the luma axis|
| cutout    | cutout               | a square of half the size set to 0 (grey)   |

All geometric transforms of a batch are one affine map per image and one `grid_sample` call
(bilinear); images no geometric transform was drawn for are returned untouched, bit for bit.
Colour is one 4x4 homogeneous matrix per image. All random numbers come from one `torch.rand`
and one `torch.randn` call on the given `torch.Generator`, so a resumed run augments exactly as
the uninterrupted one.

The controller (Sec. 3): r_t = E[sign(D_train(x_real))] measures overfitting (0: none, 1: D
separates every training image); every few minibatches p moves by sign(r_t - target) x
(images seen) / (speed_kimg x 1000), so p can go from 0 to 1 in `speed_kimg` = 500 k images;
target 0.6 is the paper's. p is clamped to [0, p_max].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from posgen.training.config import AugmentConfig


# columns of the uniform draw [N, 16] and of the normal draw [N, 4]
_U_APPLY = slice(0, 9)  # one "is it applied" draw per transform, in _ORDER
_ORDER = ("xflip", "translate", "scale", "rotate", "brightness", "contrast", "hue", "saturation", "cutout")
_U_FLIP, _U_TX, _U_TY, _U_ROT, _U_HUE, _U_CX, _U_CY = 9, 10, 11, 12, 13, 14, 15
_N_UNIFORM = 16
_G_SCALE, _G_BRIGHT, _G_CONTRAST, _G_SAT = 0, 1, 2, 3


def _eye(n: int, k: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(k, dtype=like.dtype, device=like.device).expand(n, k, k).clone()


class Augment(nn.Module):
    """ADA augmentation of image batches [N, C, H, W] (C = 1 or 3, values nominally in [-1, 1])
    with its adaptive probability `p` (a buffer, so it is in `state_dict()`)."""

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or AugmentConfig()
        self.cfg.validate()
        start = self.cfg.fixed_p if self.cfg.fixed_p is not None else 0.0
        self.register_buffer("p", torch.tensor(float(start), dtype=torch.float64))
        self.register_buffer("rt", torch.tensor(0.0, dtype=torch.float64))  # last r_t seen by update

    # ---- the controller (Sec. 3) ----------------------------------------------------------
    def update(self, sign_real_logits_mean: float, images: int) -> float:
        """Move p after D saw `images` real images whose logits had mean sign r_t =
        `sign_real_logits_mean` (i.e. `real_logits.sign().mean()` over those images):
        p += sign(r_t - target) x images / (speed_kimg x 1000), clamped to [0, p_max].
        Returns the new p. With `fixed_p` set, p stays and only r_t is recorded."""
        rt = float(sign_real_logits_mean)
        if not math.isfinite(rt) or images < 0:
            raise ValueError(f"augment update needs a finite r_t and images >= 0, got {rt}, {images}")
        self.rt.fill_(rt)
        if self.cfg.fixed_p is None:
            step = math.copysign(1.0, rt - self.cfg.target) if rt != self.cfg.target else 0.0
            p = float(self.p) + step * images / (self.cfg.speed_kimg * 1000)
            self.p.fill_(min(max(p, 0.0), self.cfg.p_max))
        return float(self.p)

    def stats(self) -> dict[str, float]:
        """For the training log: {"augment/p": p, "augment/rt": the last r_t}."""
        return {"augment/p": float(self.p), "augment/rt": float(self.rt)}

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, target={self.cfg.target}, p_max={self.cfg.p_max}, " \
               f"geometric_p_max={self.cfg.geometric_p_max}"

    def probabilities(self) -> dict[str, float]:
        """The probability each transform is applied to an image with at the current p."""
        p = float(self.p)
        pg = min(p, self.cfg.geometric_p_max)
        group = {"xflip": pg, "translate": pg, "scale": pg, "rotate": pg}
        return {name: min(1.0, getattr(self.cfg, name) * group.get(name, p)) for name in _ORDER}

    # ---- the augmentation -----------------------------------------------------------------
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment images [N, C, H, W]; differentiable w.r.t. `images`; the random numbers come
        from `generator` (torch's default one when None). p = 0 returns `images` itself and
        draws nothing."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"augment needs images [N, 1 or 3, H, W], got {list(images.shape)}")
        probs = self.probabilities()
        if max(probs.values()) <= 0:
            return images
        n, c, h, w = images.shape
        dev = generator.device if generator is not None else images.device
        u = torch.rand([n, _N_UNIFORM], generator=generator, device=dev).to(images.device, torch.float32)
        g = torch.randn([n, 4], generator=generator, device=dev).to(images.device, torch.float32)
        prob = torch.tensor([probs[k] for k in _ORDER], device=images.device)
        on = u[:, _U_APPLY] < prob  # [N, 9] which transform each image gets
        x = self._geometric(images, u, g, on)
        x = self._colour(x, u, g, on)
        return self._cutout(x, u, on)

    def _geometric(self, x: torch.Tensor, u: torch.Tensor, g: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        n, _, h, w = x.shape
        any_geom = on[:, :4].any(dim=1)  # [N]
        if not bool(any_geom.any()):
            return x
        # The inverse map, output pixel -> input pixel, in pixels about the image centre, composed
        # as in the paper's code: M = Flip^-1 Translate^-1 Scale^-1 Rotate^-1.
        flip = torch.where(on[:, 0] & (u[:, _U_FLIP] < 0.5), -1.0, 1.0)  # [N]
        size = torch.tensor([w, h], dtype=u.dtype, device=u.device)
        t = torch.round((u[:, [_U_TX, _U_TY]] * 2 - 1) * cfg.translate_max * size) * on[:, 1:2]  # [N, 2] pixels
        s = torch.where(on[:, 2], torch.exp2(g[:, _G_SCALE] * cfg.scale_std), 1.0)  # [N]
        a = torch.where(on[:, 3], (u[:, _U_ROT] * 2 - 1) * math.pi * cfg.rotate_max, 0.0)  # [N]
        cos, sin = torch.cos(a), torch.sin(a)
        # Rotate^-1 then Scale^-1: [[cos, sin], [-sin, cos]] / s; Translate^-1: - t; Flip^-1: x -> flip * x
        m = torch.zeros(n, 2, 3, dtype=u.dtype, device=u.device)  # [N, 2, 3] pixel-centred affine
        m[:, 0, 0], m[:, 0, 1] = flip * cos / s, flip * sin / s
        m[:, 1, 0], m[:, 1, 1] = -sin / s, cos / s
        m[:, 0, 2], m[:, 1, 2] = -flip * t[:, 0], -t[:, 1]
        # to affine_grid's normalised coordinates (align_corners=False): n = u * 2 / size
        theta = m.clone()
        theta[:, 0, 1] = m[:, 0, 1] * h / w
        theta[:, 1, 0] = m[:, 1, 0] * w / h
        theta[:, 0, 2] = m[:, 0, 2] * 2 / w
        theta[:, 1, 2] = m[:, 1, 2] * 2 / h
        grid = F.affine_grid(theta.to(x.dtype), [n, x.shape[1], h, w], align_corners=False)  # [N, H, W, 2]
        if cfg.padding == "constant":
            warped = F.grid_sample(x - cfg.fill, grid, mode="bilinear", padding_mode="zeros",
                                   align_corners=False) + cfg.fill
        else:
            warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        return torch.where(any_geom[:, None, None, None], warped, x)  # untouched images stay bit-exact

    def _colour(self, x: torch.Tensor, u: torch.Tensor, g: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if not bool(on[:, 4:8].any()):
            return x
        n, c, h, w = x.shape
        b = torch.where(on[:, 4], g[:, _G_BRIGHT] * cfg.brightness_std, 0.0)  # [N]
        k = torch.where(on[:, 5], torch.exp2(g[:, _G_CONTRAST] * cfg.contrast_std), 1.0)  # [N]
        if c == 1:  # brightness, then contrast about 0 (mid-grey)
            return (x + b[:, None, None, None].to(x.dtype)) * k[:, None, None, None].to(x.dtype)
        # RGB: one homogeneous 4x4 colour matrix per image, applied brightness first
        m = _eye(n, 4, u)  # [N, 4, 4]
        m[:, :3, 3] = b[:, None]
        m = m * torch.cat([k[:, None].expand(n, 3), torch.ones(n, 1, device=u.device)], 1)[:, :, None]
        eye3 = torch.eye(3, dtype=u.dtype, device=u.device)
        vv = torch.full((3, 3), 1 / 3, dtype=u.dtype, device=u.device)  # v v^T, v = (1, 1, 1) / sqrt(3) the luma axis
        cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=u.dtype,
                             device=u.device) * 3 ** -0.5  # [v]x, the cross product with v
        a = torch.where(on[:, 6], (u[:, _U_HUE] * 2 - 1) * math.pi * cfg.hue_max, 0.0)  # [N]
        rot = (torch.cos(a)[:, None, None] * eye3 + torch.sin(a)[:, None, None] * cross
               + (1 - torch.cos(a))[:, None, None] * vv)  # Rodrigues: hue rotation about v
        sat = torch.where(on[:, 7], torch.exp2(g[:, _G_SAT] * cfg.saturation_std), 1.0)  # [N]
        sm = vv + (eye3 - vv) * sat[:, None, None]  # scale the chroma, keep the luma
        hs = _eye(n, 4, u)
        hs[:, :3, :3] = sm @ rot
        m = hs @ m  # [N, 4, 4]: brightness, contrast, hue, saturation
        m = m.to(x.dtype)
        y = torch.einsum("nij,njhw->nihw", m[:, :3, :3], x) + m[:, :3, 3, None, None]
        return torch.where(on[:, 4:8].any(dim=1)[:, None, None, None], y, x)

    def _cutout(self, x: torch.Tensor, u: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        if not bool(on[:, 8].any()):
            return x
        n, _, h, w = x.shape
        ys = (torch.arange(h, device=x.device, dtype=u.dtype) + 0.5) / h  # pixel centres in [0, 1]
        xs = (torch.arange(w, device=x.device, dtype=u.dtype) + 0.5) / w
        half = self.cfg.cutout_size / 2
        out_y = (ys[None, :] - u[:, _U_CY, None]).abs() >= half  # [N, H]
        out_x = (xs[None, :] - u[:, _U_CX, None]).abs() >= half  # [N, W]
        keep = out_y[:, :, None] | out_x[:, None, :] | ~on[:, 8, None, None]  # [N, H, W]
        return x * keep[:, None].to(x.dtype)  # the square becomes 0, as in the paper's code
