"""SeFa: closed-form factorisation of latent semantics (Shen & Zhou, CVPR 2021), as Choi et al.
(Sec. 4.1, Fig. 5 f-g) and Xu et al. use it to edit projected images.

Every modulated layer first maps w to its style with an affine map, s = A w + b (A [C_in, w_dim]).
A direction n in w space changes the styles by A n, so the directions that change the styles the
most are the maximisers of ||A n||^2 subject to ||n|| = 1: the eigenvectors of A^T A with the
largest eigenvalues (SeFa Eq. 5-6). With several layers, A stacks their weights (rows normalised
to unit length, so wide layers do not dominate), and an edit moves w only at those layers.

`style_layers` finds, for any family built from `posgen.ops.ModulatedConv2d` (StyleGAN2, CIPS),
which entry of ws each modulated layer reads, by tracing one render.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from posgen.errors import UsageError
from posgen.grid import Grid
from posgen.models.base import MappedGenerator, RenderOptions
from posgen.ops.modconv import ModulatedConv2d


@dataclass(frozen=True)
class StyleLayer:
    name: str              # module path, e.g. "blocks.0.conv0"
    ws_index: int          # which ws[:, i] it reads
    weight: torch.Tensor   # effective affine weight A [C_in, w_dim] (equalised-lr gain applied)
    torgb: bool            # a to-RGB projection (excluded from the default factorisation, as in SeFa)


@torch.no_grad()
def style_layers(G: MappedGenerator) -> list[StyleLayer]:
    """Every modulated layer of G with the ws index it reads, in ws order."""
    mods = [(name, m) for name, m in G.named_modules() if isinstance(m, ModulatedConv2d)]
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(0)
    ws = torch.randn(1, G.num_ws, G.cfg.w_dim, generator=gen).to(device)  # distinct rows to recognise
    seen: dict[str, int] = {}

    def hook_for(name: str):
        def hook(module, args):
            w = args[0][0]  # [w_dim]
            match = (ws[0] - w).abs().amax(dim=1).argmin()
            seen.setdefault(name, int(match))
        return hook

    handles = [m.affine.register_forward_pre_hook(hook_for(name)) for name, m in mods]
    try:
        opts = RenderOptions(noise_mode="off") if "noise" in G.capabilities else RenderOptions()
        G.synthesize(ws, G.default_grid(), opts)
    finally:
        for h in handles:
            h.remove()
    layers = [StyleLayer(name, seen[name], (m.affine.weight * m.affine.weight_gain).detach().float().cpu(),
                         "torgb" in name) for name, m in mods if name in seen]
    return sorted(layers, key=lambda l: (l.ws_index, l.torgb))


def default_layers(G: MappedGenerator) -> list[int]:
    """ws indices of every modulated non-to-RGB layer (SeFa factorises the synthesis layers)."""
    return sorted({l.ws_index for l in style_layers(G) if not l.torgb})


@dataclass
class Factorization:
    layers: list[int]            # ws indices factorised (and moved by an edit)
    values: torch.Tensor         # [w_dim] eigenvalues of A^T A, descending
    directions: torch.Tensor     # [w_dim, w_dim]: row k is the k-th direction (unit, orthogonal)
    sigmas: torch.Tensor         # [w_dim] std of mapped w along each direction (strength unit)


@torch.no_grad()
def factorize(G: MappedGenerator, layers: Sequence[int] | None = None, sigma_samples: int = 4096,
              seed: int = 0) -> Factorization:
    """SeFa directions of G at ws indices `layers` (default `default_layers`)."""
    from posgen.apps.projection import require_mapping

    require_mapping(G)
    all_layers = style_layers(G)
    chosen = sorted(set(layers)) if layers is not None else default_layers(G)
    bad = [i for i in chosen if not 0 <= i < G.num_ws]
    if bad:
        raise UsageError(f"--layers {bad[0]} is out of range; this generator has ws indices 0-{G.num_ws - 1}")
    rows = [l.weight for l in all_layers if l.ws_index in chosen and (not l.torgb or layers is not None)]
    if not rows:
        raise UsageError(f"no modulated layer reads ws indices {chosen}")
    A = torch.cat(rows).double()  # [sum C_in, w_dim]
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)  # unit rows (SeFa's normalisation)
    values, vectors = torch.linalg.eigh(A.T @ A)  # ascending; columns are eigenvectors (SeFa Eq. 6)
    order = torch.argsort(values, descending=True)
    directions = vectors[:, order].T.contiguous()  # [w_dim, w_dim]
    device = next(G.parameters()).device
    z = torch.randn(sigma_samples, G.cfg.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    w = G.mapping(z).double().cpu()  # [S, w_dim]
    sigmas = (w @ directions.T).std(dim=0)
    return Factorization(list(chosen), values[order].float(), directions.float(), sigmas.float())


def edit_ws(ws: torch.Tensor, f: Factorization, direction: int, strengths: Sequence[float]) -> torch.Tensor:
    """ws [N, num_ws, w_dim] moved along direction `direction` by each strength (in units of the
    spread of w along it) at the factorised layers: [len(strengths) * N, num_ws, w_dim], strength-major."""
    if not 0 <= direction < f.directions.shape[0]:
        raise UsageError(f"--direction {direction} does not exist; there are {f.directions.shape[0]} "
                         f"directions (0-{f.directions.shape[0] - 1})")
    d = (f.directions[direction] * f.sigmas[direction]).to(ws)  # [w_dim]
    mask = torch.zeros(ws.shape[1], 1, dtype=ws.dtype, device=ws.device)
    mask[f.layers] = 1
    return torch.cat([ws + float(a) * mask * d for a in strengths])


@torch.no_grad()
def render_edits(G: MappedGenerator, ws: torch.Tensor, f: Factorization, direction: int, strengths: Sequence[float],
                 grid: Grid | None = None, options: RenderOptions | None = None) -> torch.Tensor:
    """Images [len(strengths), N, C, H, W] of ws edited along `direction` on `grid`."""
    opts = options or (RenderOptions(noise_mode="const") if "noise" in G.capabilities else RenderOptions())
    edited = edit_ws(ws, f, direction, strengths)
    images = G.synthesize(edited, grid or G.default_grid(), opts)
    return images.view(len(strengths), ws.shape[0], *images.shape[1:])


def describe(f: Factorization, k: int) -> list[dict]:
    """The top-k directions: index, eigenvalue, share of the total, spread of w along it."""
    total = float(f.values.sum())
    return [{"direction": i, "eigenvalue": round(float(f.values[i]), 5),
             "share": round(float(f.values[i]) / total, 5), "sigma": round(float(f.sigmas[i]), 5)}
            for i in range(min(k, len(f.values)))]


__all__ = ["Factorization", "StyleLayer", "default_layers", "describe", "edit_ws", "factorize", "render_edits",
           "style_layers"]
