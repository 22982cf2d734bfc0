"""Command-line options shared by the `posgen` subcommands: value types that fail in one line,
the canvas options (--size, --zoom, --shift, --roll, --rotate) and render options (--noise,
--truncation) with one meaning in every command, and checks on outputs and devices.
Importing this costs no torch (what needs it is imported inside the functions)."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path

from posgen.errors import CapabilityError, UsageError


MAX_SIDE = 2**20  # longest canvas side anywhere (PNG allows 2^31 - 1; beyond this no render ends)


# ---- argument parsing helpers -------------------------------------------------------------
MAX_ZOOM = 4096.0        # --zoom: a 32-pixel model at 4096x is a 131072-pixel side (the memory budget refuses)
MIN_ZOOM = 1 / 1024
MAX_SHIFT = 1e6          # --shift: training pixels
MAX_TRUNCATION = 10.0    # --truncation: psi far outside [0, 1] only extrapolates w into noise
MAX_SEED = 2**32 - 1   # seeds name latents across numpy, torch and other tools: 32 bits
MAX_SEEDS = 100_000    # seeds in one request (FID-sized sample counts go through --num-samples)


def parse_seeds(text: str) -> list[int]:
    """'0-7,10,12-13' -> [0..7, 10, 12, 13]; seeds in [0, MAX_SEED], at most MAX_SEEDS of them."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise UsageError(f"malformed --seeds {text!r}: use e.g. 0-7,10")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi > MAX_SEED:
            raise UsageError(f"--seeds {text}: seeds go up to {MAX_SEED}")
        ranges.append((lo, hi))
    if sum(hi - lo + 1 for lo, hi in ranges) > MAX_SEEDS:
        raise UsageError(f"--seeds {text}: more than {MAX_SEEDS} seeds in one request")
    return [seed for lo, hi in ranges for seed in range(lo, hi + 1)]


def parse_shift(text: str) -> tuple[float, float]:
    """'DY,DX' in training pixels, fractional allowed."""
    try:
        dy, dx = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"malformed --shift {text!r}: use DY,DX, e.g. 0,4.5") from None
    if not all(map(math.isfinite, (dy, dx))):
        raise UsageError(f"malformed --shift {text!r}: values must be finite")
    if max(abs(dy), abs(dx)) > MAX_SHIFT:
        raise UsageError(f"--shift {text}: values must be within [-{MAX_SHIFT:g}, {MAX_SHIFT:g}] pixels")
    return dy, dx


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (or a single number for a square)."""
    m = re.fullmatch(r"\s*(-?\d+)\s*(?:[xX]\s*(-?\d+)\s*)?", text)
    if not m:
        raise UsageError(f"malformed --size {text!r}: use HxW, e.g. 32x64")
    h, w = int(m.group(1)), int(m.group(2) or m.group(1))
    if h <= 0 or w <= 0:
        raise UsageError(f"--size must be positive, got {h}x{w}")
    if max(h, w) > MAX_SIDE:
        raise UsageError(f"--size {h}x{w}: a side is longer than {MAX_SIDE} pixels")
    return h, w


def finite(name: str, limit: float = math.inf):
    """argparse type: a finite number for option --name, at most `limit` in magnitude."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise UsageError(f"--{name} must be a number, got {text!r}") from None
        if not math.isfinite(v):
            raise UsageError(f"--{name} must be a finite number, got {text}")
        if abs(v) > limit:
            raise UsageError(f"--{name} must be within [-{limit:g}, {limit:g}], got {text}")
        return v
    return parse


def positive(name: str, kind: type = float, low: float = 0.0, high: float = math.inf):
    """argparse type: a finite positive number of `kind` (float or int) for option --name, in [low, high]
    when those are given."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise UsageError(f"--{name} must be {what}, got {text!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise UsageError(f"--{name} must be positive, got {text}")
        if not low <= v <= high:
            raise UsageError(f"--{name} must be between {low:g} and {high:g}, got {text}")
        return v
    return parse


def seed_number(text: str) -> int:
    """argparse type of --seed: a whole number in [0, MAX_SEED]."""
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"--seed must be a whole number, got {text!r}") from None
    if not 0 <= v <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}, got {text}")
    return v


def check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")


def canvas_from_args(args: argparse.Namespace):
    """The `Canvas` that --size / --zoom / --shift / --roll / --rotate ask for (the same in every command)."""
    from posgen.grid import Canvas

    return Canvas(size=getattr(args, "size", None), zoom=getattr(args, "zoom", None) or 1.0, shift=getattr(args, "shift", None), roll=bool(getattr(args, "roll", False)),
                  rotate=getattr(args, "rotate", None) or 0.0)


def grid_for(G, canvas, model: str, max_pixels: int | None = 4096 * 4096):
    """`canvas` on generator G, after checking that G's family can render it (one line if not).
    `max_pixels` caps the canvas for commands that prepare other data at its size (metrics' real images);
    `generate` passes None: its renders are bounded by the memory budget (`posgen.memory`) instead."""
    from posgen.models.base import require

    for capability, option in canvas.requested().items():
        require(G, capability, option, model)
    grid = canvas.grid(G.default_grid())  # an affine map only: nothing is allocated yet
    if max(grid.size) > MAX_SIDE:
        raise UsageError(f"the canvas would be {grid.height}x{grid.width} pixels, a side longer than {MAX_SIDE}")
    if max_pixels is not None and grid.height * grid.width > max_pixels:
        side = math.isqrt(max_pixels)
        raise UsageError(f"the canvas would be {grid.height}x{grid.width} pixels, more than {side}x{side}")
    return grid


def render_options(args: argparse.Namespace) -> dict:
    """RenderOptions fields the user set explicitly (the rest stay the family's defaults)."""
    options = {}
    if getattr(args, "truncation", None) is not None:
        options["truncation_psi"] = args.truncation
    if getattr(args, "noise", None) is not None:
        options["noise_mode"] = args.noise
    if getattr(args, "chunk_points", None) is not None:
        options["chunk_points"] = args.chunk_points
    if getattr(args, "steps", None) is not None:
        options["steps"] = args.steps
    if getattr(args, "sampler", None) is not None:
        options["sampler"] = args.sampler
    if getattr(args, "label", None) is not None:
        options["label"] = args.label
    return options


def refusing(fn):
    """Run fn, turning a capability refusal into the CLI's one-line usage error with option names."""
    try:
        return fn()
    except CapabilityError as e:
        message = re.sub(r"^label\b", "--class", str(e))  # "label needs ..." / "label 12 is not a class ..."
        raise UsageError(message.replace("truncation_psi", "--truncation").replace("noise_mode", "--noise")
                         .replace("chunk_points", "--chunk-points")
                         .replace("steps needs", "--steps/--sampler needs")) from None


def _writable_folder(folder: Path, option: str, path: str, create: bool = False) -> None:
    """Refuse in one line, before any work, a folder that cannot be made or written: a part of its path is
    a file, or its nearest existing ancestor is not writable. With `create`, make it now (a run directory,
    which training writes at once)."""
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UsageError(f"cannot write {option} {path}: {folder} is a file") from None
        except OSError as e:
            raise UsageError(f"cannot write {option} {path}: {e.strerror or e}") from None
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write {option} {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {option} {path}: {existing} is not writable")


def output_folder(path: str, option: str = "--out", create: bool = False) -> Path:
    """--out for commands that write a folder of files: refused in one line, before any work, if it names a
    file or cannot be written; nothing is created on disk unless `create` (the command makes it when it
    writes)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {path} is a file; give a folder")
    _writable_folder(out, option, path, create)
    return out


# the file kinds posgen writes as single outputs, by suffix, with the first bytes of each
FILE_SIGNATURES = {".png": b"\x89PNG\r\n\x1a\n", ".gif": b"GIF8"}


def output_file(path: str, suffix: str, option: str = "--out") -> Path:
    """--out naming one file of kind `suffix` (".png", ".gif"): refused in one line, before any work, when it
    is a folder, has another suffix, cannot be written, or names an existing file that is not of that kind
    (posgen overwrites only its own kind of output, never a checkpoint or anyone's notes). The writer makes
    its folder."""
    out = Path(path)
    if out.suffix.lower() != suffix:
        raise UsageError(f"{option} {path}: the output is written as {suffix}; give a {suffix} file name")
    if out.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a {suffix} file name")
    if out.exists():
        with open(out, "rb") as f:
            if f.read(len(FILE_SIGNATURES[suffix])) != FILE_SIGNATURES[suffix]:
                raise UsageError(f"{option} {path} is a file that is not a {suffix[1:].upper()}: posgen does not "
                                 f"overwrite it")
    _writable_folder(out.parent, option, path)
    return out


def results_file(path: str) -> Path:
    """--out for evaluate: a JSON-lines file that results are appended to, never anything else
    (a checkpoint, an image, a folder, someone else's file)."""
    out = Path(path)
    if out.suffix not in (".jsonl", ".json"):
        raise UsageError(f"--out {path}: evaluate appends JSON lines to a .jsonl (or .json) file")
    if out.is_dir():
        raise UsageError(f"--out {path} is a folder; give a .jsonl file")
    if out.exists():
        try:
            for line in out.read_text().splitlines():
                if line.strip() and not isinstance(json.loads(line), dict):
                    raise ValueError
        except (ValueError, UnicodeDecodeError):
            raise UsageError(f"--out {path} exists and is not a JSON lines file of results: posgen appends only "
                             "to its own") from None
    _writable_folder(out.parent, "--out", path)
    return out


def parse_region(text: str) -> tuple[int, int, int, int]:
    """'TOP,LEFT,H,W' in training pixels."""
    try:
        top, left, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"malformed --region {text!r}: use TOP,LEFT,HEIGHT,WIDTH, e.g. 0,0,16,16") from None
    if top < 0 or left < 0 or h < 1 or w < 1:
        raise UsageError(f"--region {text!r}: top/left must be >= 0 and the size positive")
    return top, left, h, w


def index_list(name: str):
    """argparse type: '0-3,5' -> [0, 1, 2, 3, 5] for option --name."""
    def parse(text: str) -> list[int]:
        try:
            return parse_seeds(text)
        except UsageError:
            raise UsageError(f"malformed --{name} {text!r}: use e.g. 0-3,5") from None
    return parse


def numbers(name: str, count: int | None = None):
    """argparse type: comma-separated finite numbers (exactly `count` of them when given)."""
    def parse(text: str) -> list[float]:
        values = [finite(name)(v) for v in text.split(",") if v.strip()]
        if not values or (count is not None and len(values) != count):
            raise UsageError(f"malformed --{name} {text!r}: give {count or 'one or more'} comma-separated numbers")
        return values
    return parse


def add_canvas_options(s: argparse.ArgumentParser, what: str = "render") -> None:
    """--size / --zoom / --shift / --roll / --rotate: one meaning in every command (posgen.grid.Canvas)."""
    s.add_argument("--zoom", type=positive("zoom", low=MIN_ZOOM, high=MAX_ZOOM),
                   help=f"{what} the training extent this many times more densely (real data for metrics is "
                        "prepared at the zoomed size)")
    s.add_argument("--size", type=parse_size, help="output HxW (default: the training size times --zoom); a size "
                   "alone shows more or less of the plane at the training spacing")
    s.add_argument("--shift", type=parse_shift, metavar="DY,DX",
                   help="move the content by DY,DX training pixels (fractional allowed)")
    s.add_argument("--roll", action="store_true", help="with --shift: circular shift (wrap around the canvas)")
    s.add_argument("--rotate", type=finite("rotate"), metavar="DEG",
                   help="rotate the content DEG degrees counter-clockwise about the canvas centre")


def add_render_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--noise", choices=["random", "const", "off"],
                   help="noise inputs (default const: a fixed field aligned with the grid)")
    s.add_argument("--truncation", type=finite("truncation", MAX_TRUNCATION), metavar="PSI",
                   help="truncation psi towards the mean w (default 1: none)")
    s.add_argument("--steps", type=positive("steps", int), metavar="N",
                   help="sampling steps of an iterative sampler (ddpm; default from the model's config)")
    s.add_argument("--sampler", choices=["ddpm", "ddim"],
                   help="ddpm: ancestral (respaced when --steps < T); ddim: deterministic (ddpm models only)")
    s.add_argument("--class", dest="label", type=int, metavar="K",
                   help="draw class K from every seed (class-conditional models; default: the class each seed carries)")


# a value that starts with "-" but is a number (argparse would read "-3,2" or "-inf" as an option)
_NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def join_signed_values(argv: list[str]) -> list[str]:
    """Join `--option -3,2` into `--option=-3,2` for every long option followed by a negative number, so that
    argparse hands the value to the option's own check (which accepts or refuses it in one line)."""
    out, i = [], 0
    while i < len(argv):
        if (argv[i].startswith("--") and "=" not in argv[i] and i + 1 < len(argv)
                and _NEGATIVE_NUMBER.match(argv[i + 1])):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out
