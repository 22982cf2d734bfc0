"""Checkpoints: safetensors weights with the JSON run config and training state as metadata.

One file holds a whole run (`checkpoint.safetensors` in the run directory: G, G_ema, D,
optimizer moments, progress); `export_generator` writes the G_ema weights alone. Files are
written atomically (temporary file + fsync + rename, `posgen.files.atomic_write`) so an interrupted
save never leaves a broken checkpoint; a SHA-256 of the tensors in the metadata is checked on every
load (`verify`: `posgen info --verify`). Nothing is unpickled.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from posgen.config import RunConfig
from posgen.errors import CheckpointError, ConfigError, one_line
from posgen.files import read_tensors, write_tensors
from posgen.models.base import Generator

FORMAT = "posgen-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.safetensors"


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order (safetensors itself
    has no checksum: flipped bits would load and render silently)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(path: Path, tensors: dict[str, torch.Tensor], config: RunConfig, state: dict[str, Any]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"format": FORMAT, "config": json.dumps(config.to_dict()), "state": json.dumps(state),
            "sha256": tensor_digest(tensors)}
    write_tensors(Path(path), tensors, meta)


def resolve(path: str | Path) -> Path:
    """A run directory, a .safetensors file or the name of a shipped model -> the checkpoint file."""
    from posgen.pretrained import PRETRAINED, pretrained_path

    p = Path(path).expanduser()
    if not p.exists() and pretrained_path(str(path)) is not None:
        return pretrained_path(str(path))
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        names = ", ".join(PRETRAINED)
        raise CheckpointError(f"no checkpoint at {path} (not a file, run directory or shipped model: {names})")
    return p


def _read_verified(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """-> (tensors, metadata) of the checkpoint file `p`, its SHA-256 checked when it has one (files
    written before checksums have none); a CheckpointError naming `p` when unreadable or corrupt."""
    try:
        tensors, meta = read_tensors(p)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read checkpoint {p}: {one_line(e)}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a posgen checkpoint")
    if "sha256" in meta and tensor_digest(tensors) != meta["sha256"]:
        raise CheckpointError(f"checkpoint {p} is corrupt: its tensors do not match their SHA-256")
    return tensors, meta


def verify(path: str | Path) -> str | None:
    """The stored SHA-256 of a checkpoint's tensors once recomputed and found equal (`posgen info
    --verify`); None for a file that predates checksums; a CheckpointError when corrupt or unreadable."""
    return _read_verified(resolve(path))[1].get("sha256")


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], RunConfig, dict[str, Any]]:
    """-> (tensors, run config, training state)."""
    from posgen.families import run_config_from_dict  # the table imports the trainers, which save checkpoints

    p = resolve(path)
    tensors, meta = _read_verified(p)
    try:
        config = run_config_from_dict(json.loads(meta["config"]))
    except (ConfigError, json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"bad config in checkpoint {p}: {e}") from None
    try:
        state = json.loads(meta.get("state", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"bad training state in checkpoint {p}: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"bad training state in checkpoint {p}: must be a JSON object")
    return tensors, config, state


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def generator_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EMA generator's tensors, or G's when no EMA is stored."""
    return prefixed(tensors, "G_ema") or prefixed(tensors, "G")


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, RunConfig, dict[str, Any]]:
    """The EMA generator of a checkpoint (G when no EMA is stored), in eval mode, built from the
    whole run config through the family table."""
    from posgen.families import build_generator

    tensors, config, state = load(path)
    weights = generator_weights(tensors)
    if not weights:
        raise CheckpointError(f"checkpoint {resolve(path)} holds no generator weights")
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(f"checkpoint {resolve(path)} has weights that are not finite ({bad})")
    G = build_generator(config)
    try:
        missing, unexpected = G.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise CheckpointError(f"checkpoint {resolve(path)} does not match its config: {one_line(e)[:200]}") from None
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {resolve(path)} does not match its config "
                              f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
    return G.to(device).eval().requires_grad_(False), config, state


def export_generator(src: str | Path, dst: str | Path, half: bool = True, name: str | None = None) -> Path:
    """Write the EMA generator alone (float16 by default): a small file for sharing, its run
    config renamed to `name` when given (a model shipped under another name than its preset's)."""
    tensors, config, state = load(src)
    if name is not None:
        config = dataclasses.replace(config, name=name)
    weights = generator_weights(tensors)
    dtype = torch.float16 if half else torch.float32
    out = {f"G_ema.{k}": (v.to(dtype) if v.is_floating_point() else v) for k, v in weights.items()}
    keep = {k: state[k] for k in ("step", "kimg", "seconds") if k in state}
    save(Path(dst), out, config, keep)
    return Path(dst)
