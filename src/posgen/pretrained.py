"""Generators shipped inside the package (EMA weights, fp16 safetensors with their config),
usable by name wherever a checkpoint path is accepted: `posgen generate --checkpoint digits-mspe`.

PRETRAINED maps each name to a one-line summary; the file is `posgen/assets/<name>.safetensors`.
An existing file or directory of the same name takes precedence over a shipped model.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

PRETRAINED: dict[str, str] = {
    "digits-baseline": "StyleGAN2 baseline (learned constant, zero padding), biased digits, 32x32, class-conditional with the nearest-sample pull (--class 0-9), 87 kimg",
    "digits-sspe": "SS-PE: sinusoid input only at 4x4 (Choi Eq. 4), biased digits, 32x32, class-conditional with the nearest-sample pull, 94 kimg",
    "digits-mspe": "MS-PE: sinusoids at every scale (Choi Eq. 3), biased digits, 32x32, class-conditional with the nearest-sample pull, 80 kimg",
    "digits-nopad": "padding-free baseline: learned constant, no zero padding (Xu Tab. 2c), 32x32, class-conditional with the nearest-sample pull, 63 kimg",
    "digits-sspe-nopad": "padding-free, SPE input (Xu Tab. 2e), 32x32, class-conditional with the nearest-sample pull, 92 kimg (38 + 26 minutes)",
    "digits-mspe-nopad": "padding-free MS-PE, biased digits, 32x32, class-conditional with the nearest-sample pull, 106 kimg (38 + 26 minutes)",
    "digits-csg-nopad": "padding-free, Cartesian grid input (Xu Eq. 6, Tab. 2d), 32x32, class-conditional with the nearest-sample pull, 52 kimg (under-trained)",
    "digits-mspe-resize": "MS-PE trained with random resizing, canvases 32-64 resized to D (Choi Sec. 4.2, Fig. 6d), class-conditional with the nearest-sample pull, 41 kimg (under-trained)",
    "digits-mspie-const": "MS-PIE, learned constant interpolated to 48/64 (Xu Tab. 5c), class-conditional with the nearest-sample pull, 46 kimg",
    "digits-mspie-csg": "MS-PIE, Cartesian grid, interp (Xu Tab. 5d), class-conditional with the nearest-sample pull, 39 kimg (under-trained)",
    "digits-mspie-spe-interp": "MS-PIE, SPE-interp (Xu Tab. 5e), class-conditional with the nearest-sample pull, 40 kimg (under-trained)",
    "digits-mspie": "MS-PIE, SPE-expand: one model for 32/48/64 canvases (Xu Tab. 5f), packed D, best of 126 kimg by FID: 70 kimg",
    "digits-cips": "CIPS: per-pixel MLP on Fourier features + coordinate embeddings (Anokhin), 32x32, class-conditional with the nearest-sample pull, 66 kimg",
    "digits-cips-ne": "CIPS-NE: Fourier features only, no coordinate embeddings (Anokhin Tab. 3), 32x32, class-conditional with the nearest-sample pull, 73 kimg",
    "digits-cips-nofourier": "CIPS without Fourier features: coordinate embeddings only (Anokhin Tab. 3), 32x32, class-conditional with the nearest-sample pull, 66 kimg",
    "panorama-cips": "CIPS on a 128-px cylinder from 32x32 patches of one photo: 360-degree strips (Anokhin Sec. 4.8), 121 kimg",
    "digits-sg3t": "StyleGAN3-T (alias-free, translation-equivariant), biased digits, 32x32, 35 kimg (collapsed to one glyph)",
    "digits-sg3r": "StyleGAN3-R (rotation-equivariant), biased digits, 32x32, 17 kimg (collapsed, blobs)",
    "digits-dcgan": "DCGAN, zero padding (Xu Tab. 4a), biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "digits-dcgan-nopad": "DCGAN without padding (Xu Tab. 4b), biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "digits-dcgan-nopad-spe": "DCGAN without padding + SPE at the 4x4 map (Xu Tab. 4c), biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "digits-dcgan-nopad-csg": "DCGAN without padding + Cartesian grid at the 4x4 map, biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "digits-pggan": "PGGAN generator (fixed resolution), zero padding (Xu Tab. 3a), biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "digits-pggan-nopad": "PGGAN generator without padding (Xu Tab. 3b), biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "digits-pggan-nopad-spe": "PGGAN generator without padding + SPE (Xu Tab. 3c), biased digits, 32x32, 5-minute CPU run (10-14 kimg)",
    "singan-pad": "SinGAN with the official input padding on china.jpg (86x128, 6 scales x 400 iterations)",
    "singan-nopad": "padding-free SinGAN on china.jpg (86x128, 6 scales x 400 iterations; Xu Fig. 1b)",
    "singan-csg": "padding-free SinGAN + Cartesian grid in the coarsest noise on china.jpg (86x128, 6 x 400; Xu Fig. 7b)",
    "singan-spe": "padding-free SinGAN + sinusoid in the coarsest noise on china.jpg (86x128, 6 x 400; Xu Fig. 7c)",
    "digits-ddpm": "DDPM baseline U-Net (no positional encoding) on the biased digits, 32x32, 70 kimg (early: noisy samples)",
    "digits-ddpm-mspe": "DDPM U-Net with MS-PE (Choi Sec. 4.5) on the biased digits, 32x32, 70 kimg (early: noisy samples)",
}


def pretrained_path(name: str) -> Path | None:
    """The shipped file of model `name`, or None when there is no such model in this install."""
    if name not in PRETRAINED:
        return None
    path = Path(str(resources.files("posgen") / "assets" / f"{name}.safetensors"))
    return path if path.is_file() else None


def list_pretrained() -> list[dict]:
    """Name, summary, file and size of every shipped model present in this install."""
    rows = []
    for name, summary in PRETRAINED.items():
        path = pretrained_path(name)
        if path is not None:
            rows.append({"name": name, "summary": summary, "path": str(path), "bytes": path.stat().st_size})
    return rows
