"""A hostile user's corpus (issue 17): bad or unusual input to every `posgen` command, each case
asserting the promise "bad input -> one line on stderr, exit 2, no traceback, nothing lost"
(or exit 0 with the right output where the input is unusual but fine).

The files are made here: corrupt, truncated and bit-flipped checkpoints, pickles renamed
.safetensors (one of them would run a shell command if unpickled), checkpoints whose config
does not match their tensors, image bombs, a zip with path-traversal members, non-UTF-8 paths,
files an output would overwrite. Every file of the world is hashed before and after each case.
The CLI runs in-process (`posgen.cli.main`) on the shipped 32x32 models and a 4-step tiny run.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from posgen.checkpoint import CHECKPOINT_NAME, tensor_digest
from posgen.cli import main
from posgen.pretrained import pretrained_path

NON_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not valid UTF-8 (a surrogate escape in Python)


class _Evil:
    """Unpickling this runs a shell command that creates the file PWNED (it never must)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rewrite(src: Path, dst: Path, *, tensors=None, meta=None, digest: bool = True) -> None:
    """Copy checkpoint `src` to `dst` with edited tensors / metadata (digest recomputed unless told)."""
    with safe_open(str(src), framework="pt") as f:
        old_meta = dict(f.metadata())
    t = load_file(str(src)) if tensors is None else tensors(load_file(str(src)))
    m = old_meta if meta is None else meta(dict(old_meta))
    if digest and "sha256" in m:
        m["sha256"] = tensor_digest(t)
    save_file(t, str(dst), metadata=m)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (greyscale) and holds almost no data: an image bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _small_png(path: Path, size=(32, 32)) -> None:
    from PIL import Image

    Image.new("RGB", size[::-1], (200, 10, 10)).save(path)


def build_world(root: Path, run_src: Path) -> dict[str, str]:
    """Every file the cases use, under `root`; returns name -> path."""
    run = root / "run"
    shutil.copytree(run_src, run)
    good = root / "good.safetensors"  # a whole run's checkpoint, with its SHA-256
    shutil.copy(run / CHECKPOINT_NAME, good)
    shutil.copy(pretrained_path("digits-mspe"), root / "exported.safetensors")  # G_ema alone, no seed
    data = good.read_bytes()
    (root / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (root / "empty.safetensors").write_bytes(b"")
    flipped = bytearray(data)
    flipped[-100] ^= 0x10  # one bit in the tensor data
    (root / "bitflip.safetensors").write_bytes(bytes(flipped))
    (root / "header.safetensors").write_bytes(struct.pack("<Q", 2**62) + data[8:])
    torch.save({"G_ema.w": torch.zeros(3)}, root / "torchsave.safetensors")
    (root / "evil.safetensors").write_bytes(pickle.dumps(_Evil(str(root / "PWNED"))))
    _rewrite(good, root / "mismatch.safetensors", meta=lambda m: {
        **m, "config": json.dumps({**json.loads(m["config"]),
                                   "model": {**json.loads(m["config"])["model"], "channel_max": 24}})})
    _rewrite(good, root / "missing.safetensors",
             tensors=lambda t: {k: v for k, v in t.items() if k != min(k for k in t if k.startswith("G_ema."))})
    _rewrite(good, root / "nometa.safetensors", meta=lambda m: {})
    _rewrite(good, root / "badconfig.safetensors", meta=lambda m: {**m, "config": "{not json"})
    _rewrite(good, root / "listconfig.safetensors", meta=lambda m: {**m, "config": "[1, 2]"})
    _rewrite(good, root / "badfamily.safetensors",
             meta=lambda m: {**m, "config": json.dumps({**json.loads(m["config"]), "family": "bogus"})})
    _rewrite(good, root / "nanconfig.safetensors", meta=lambda m: {**m, "config": json.dumps(
        {**json.loads(m["config"]), "train": {**json.loads(m["config"])["train"], "lr": float("nan")}})})
    _rewrite(good, root / "liststate.safetensors", meta=lambda m: {**m, "state": "[1]"})
    _rewrite(good, root / "baddigest.safetensors", meta=lambda m: {**m, "sha256": "0" * 64}, digest=False)
    _rewrite(good, root / "nandata.safetensors", tensors=lambda t: {  # one generator weight NaN, digest valid
        k: (torch.full_like(v, float("nan")) if k == min(n for n in t if n.startswith("G_ema.")) else v)
        for k, v in t.items()})
    nostep = root / "nostep"
    nostep.mkdir()
    _rewrite(run / CHECKPOINT_NAME, nostep / CHECKPOINT_NAME, meta=lambda m: {**m, "state": json.dumps(
        {k: v for k, v in json.loads(m["state"]).items() if k != "step"})})
    (root / "dir.safetensors").mkdir()
    (root / "corruptrun").mkdir()
    (root / "corruptrun" / CHECKPOINT_NAME).write_bytes(bytes(flipped))
    (root / "emptyrun").mkdir()
    shutil.copy(good, root / f"{NON_UTF8}.safetensors")
    (root / "notes.txt").write_text("my notes\n")
    (root / "notes.jsonl").write_text("not json at all\n")
    (root / "afile").write_text("a plain file\n")
    (root / "notimage.png").write_text("this is text\n")
    _small_png(root / "red.png")
    (root / "bomb.png").write_bytes(_png_header(9000, 9000))          # 81M pixels: under PIL's limit
    (root / "megabomb.png").write_bytes(_png_header(100000, 100000))  # beyond PIL's limit
    images = root / "images"
    images.mkdir()
    for i in range(3):
        _small_png(images / f"{i}.png")
    with zipfile.ZipFile(root / "traversal.zip", "w") as z:
        z.write(images / "0.png", "../../escaped.png")
        z.write(images / "1.png", "/abs.png")
    with zipfile.ZipFile(root / "bombs.zip", "w") as z:
        z.writestr("bomb.png", _png_header(9000, 9000))
    (root / "notzip.zip").write_text("not a zip\n")
    torch.save({"ws": torch.zeros(1, 2, 3)}, root / "latent-pickle.safetensors")
    save_file({"ws": torch.zeros(1, 3, 5)}, str(root / "latent-shape.safetensors"),
              metadata={"format": "posgen-latent-v1", "meta": "{}"})
    return {p.relative_to(root).as_posix(): str(p) for p in [root, *root.rglob("*")]} | {
        "root": str(root), "PWNED": str(root / "PWNED"), "nonutf8": str(root / f"{NON_UTF8}.safetensors")}


def _hashes(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


G = "generate"
E = "evaluate"
EV = ["--metrics", "eqt", "--eq-samples", "2", "--batch-size", "2"]

# (id, argv with {name} for a world file and {out} for a fresh output path, exit code, text in the one line)
CASES = [
    # ---- checkpoints: corrupt, foreign, mismatched -------------------------------------------
    ("ckpt-missing", [G, "--checkpoint", "{root}/nothing.safetensors", "--out", "{out}"], 2, "no checkpoint at"),
    ("ckpt-empty", [G, "--checkpoint", "{empty.safetensors}", "--out", "{out}"], 2, "cannot read checkpoint"),
    ("ckpt-truncated", [G, "--checkpoint", "{truncated.safetensors}", "--out", "{out}"], 2, "cannot read checkpoint"),
    ("ckpt-bitflip", [G, "--checkpoint", "{bitflip.safetensors}", "--out", "{out}"], 2, "is corrupt"),
    ("ckpt-header", [G, "--checkpoint", "{header.safetensors}", "--out", "{out}"], 2, "cannot read checkpoint"),
    ("ckpt-torch-save", [G, "--checkpoint", "{torchsave.safetensors}", "--out", "{out}"], 2, "cannot read checkpoint"),
    ("ckpt-evil-pickle", [G, "--checkpoint", "{evil.safetensors}", "--out", "{out}"], 2, "cannot read checkpoint"),
    ("ckpt-evil-info", ["info", "{evil.safetensors}"], 2, "cannot read checkpoint"),
    ("ckpt-config-mismatch", [G, "--checkpoint", "{mismatch.safetensors}", "--out", "{out}"], 2,
     "does not match its config"),
    ("ckpt-missing-tensor", [G, "--checkpoint", "{missing.safetensors}", "--out", "{out}"], 2,
     "does not match its config"),
    ("ckpt-no-metadata", [G, "--checkpoint", "{nometa.safetensors}", "--out", "{out}"], 2, "not a posgen checkpoint"),
    ("ckpt-config-not-json", [G, "--checkpoint", "{badconfig.safetensors}", "--out", "{out}"], 2, "bad config"),
    ("ckpt-config-a-list", [G, "--checkpoint", "{listconfig.safetensors}", "--out", "{out}"], 2, "bad config"),
    ("ckpt-unknown-family", [G, "--checkpoint", "{badfamily.safetensors}", "--out", "{out}"], 2, "bad config"),
    ("ckpt-nan-in-config", ["info", "{nanconfig.safetensors}"], 2, "bad config"),
    ("ckpt-state-a-list", ["info", "{liststate.safetensors}"], 2, "bad training state"),
    ("ckpt-wrong-digest", ["info", "{baddigest.safetensors}"], 2, "is corrupt"),
    ("ckpt-nan-weights", [G, "--checkpoint", "{nandata.safetensors}", "--seeds", "0", "--out", "{out}"], 2,
     "not finite"),
    ("ckpt-a-directory", [G, "--checkpoint", "{dir.safetensors}", "--out", "{out}"], 2, "no checkpoint at"),
    ("ckpt-empty-run-dir", [G, "--checkpoint", "{emptyrun}", "--out", "{out}"], 2, "no checkpoint at"),
    ("ckpt-a-text-file", [G, "--checkpoint", "{notes.txt}", "--out", "{out}"], 2, "cannot read checkpoint"),
    ("ckpt-an-image", ["info", "{red.png}"], 2, "cannot read checkpoint"),
    ("verify-good", ["info", "--verify", "{good.safetensors}"], 0, ""),
    ("verify-bitflip", ["info", "--verify", "{bitflip.safetensors}"], 2, "is corrupt"),
    ("verify-truncated", ["info", "--verify", "{truncated.safetensors}"], 2, "cannot read checkpoint"),
    ("nonutf8-checkpoint", [G, "--checkpoint", "{nonutf8}", "--seeds", "0", "--out", "{out}"], 0, ""),
    ("nonutf8-missing", [G, "--checkpoint", "{root}/" + NON_UTF8 + "-no", "--out", "{out}"], 2, "no checkpoint at"),
    ("nonutf8-out", [G, "--checkpoint", "digits-mspe", "--seeds", "0", "--out", "{out}/" + NON_UTF8], 0, ""),
    # ---- wrong family for a command --------------------------------------------------------
    ("cips-on-stylegan2", ["cips", "fid", "--model", "digits-mspe", "--out", "{out}"], 2, "cips"),
    ("cips-panorama-on-stylegan2", ["cips", "panorama", "--panorama", "digits-mspe", "--out", "{out}"], 2, "cips"),
    ("steps-on-gan", [G, "--checkpoint", "digits-mspe", "--steps", "5", "--out", "{out}"], 2, "--steps"),
    ("sampler-on-gan", [G, "--checkpoint", "digits-mspe", "--sampler", "ddim", "--out", "{out}"], 2, "--steps"),
    ("chunks-on-gan", [G, "--checkpoint", "digits-mspe", "--chunk-points", "64", "--out", "{out}"], 2,
     "--chunk-points"),
    ("noise-on-cips", [G, "--checkpoint", "digits-cips", "--noise", "random", "--out", "{out}"], 2, "--noise"),
    ("reconstruct-on-gan", ["reconstruct", "--checkpoint", "digits-mspe", "--out", "{out}"], 2, "ddpm"),
    ("project-singan", ["project", "--checkpoint", "singan-pad", "--digit", "3", "--out", "{out}"], 2, "w space"),
    ("edit-ddpm", ["edit", "--checkpoint", "digits-ddpm", "--list", "3"], 2, "w space"),
    ("mix-singan", ["mix", "--checkpoint", "singan-pad", "--out", "{out}/m.png"], 2, "singan"),
    ("zoom-on-singan", [G, "--checkpoint", "singan-pad", "--zoom", "2", "--out", "{out}"], 2, "--zoom"),
    ("truncation-on-ddpm", [G, "--checkpoint", "digits-ddpm", "--truncation", "0.5", "--out", "{out}"], 2,
     "--truncation"),
    # ---- numbers: NaN, inf, huge, negative, zero --------------------------------------------
    ("truncation-nan", [G, "--checkpoint", "digits-mspe", "--truncation", "nan", "--out", "{out}"], 2, "finite"),
    ("truncation-inf-evaluate", [E, "--checkpoint", "digits-mspe", "--truncation", "inf", *EV], 2, "finite"),
    ("truncation-minus-1e30", [G, "--checkpoint", "digits-mspe", "--truncation", "-1e30", "--out", "{out}"], 2,
     "--truncation"),
    ("truncation-negative-ok", [G, "--checkpoint", "digits-mspe", "--seeds", "0", "--truncation", "-0.5",
                                "--out", "{out}"], 0, ""),
    ("zoom-625", [G, "--checkpoint", "digits-mspe", "--zoom", "625", "--out", "{out}"], 2, "memory"),
    ("zoom-1e308", [G, "--checkpoint", "digits-mspe", "--zoom", "1e308", "--out", "{out}"], 2, "--zoom"),
    ("zoom-zero", [G, "--checkpoint", "digits-mspe", "--zoom", "0", "--out", "{out}"], 2, "--zoom must be positive"),
    ("zoom-tiny", [G, "--checkpoint", "digits-mspe", "--zoom", "1e-300", "--out", "{out}"], 2, "--zoom"),
    ("size-negative", [G, "--checkpoint", "digits-mspe", "--size", "-3x5", "--out", "{out}"], 2, "positive"),
    ("size-zero", [G, "--checkpoint", "digits-mspe", "--size", "0", "--out", "{out}"], 2, "positive"),
    ("size-huge", [G, "--checkpoint", "digits-mspe", "--size", "99999999999x2", "--out", "{out}"], 2, "longer than"),
    ("size-garbage", [G, "--checkpoint", "digits-mspe", "--size", "12by12", "--out", "{out}"], 2, "malformed --size"),
    ("shift-nan", [G, "--checkpoint", "digits-mspe", "--shift", "nan,1", "--out", "{out}"], 2, "finite"),
    ("shift-huge", [G, "--checkpoint", "digits-mspe", "--shift", "1e308,0", "--out", "{out}"], 2, "--shift"),
    ("shift-negative-ok", [G, "--checkpoint", "digits-mspe", "--seeds", "0", "--shift", "-3,2", "--out", "{out}"],
     0, ""),
    ("roll-without-shift-ok", [G, "--checkpoint", "digits-mspe", "--seeds", "0", "--roll", "--out", "{out}"], 0, ""),
    ("rotate-inf", [G, "--checkpoint", "digits-mspe", "--rotate", "-inf", "--out", "{out}"], 2, "finite"),
    ("seeds-negative", [G, "--checkpoint", "digits-mspe", "--seeds", "-1", "--out", "{out}"], 2, "--seeds"),
    ("seeds-huge", [G, "--checkpoint", "digits-mspe", "--seeds", "99999999999999999999", "--out", "{out}"], 2,
     "--seeds"),
    ("seeds-too-many", [G, "--checkpoint", "digits-mspe", "--seeds", "0-999999999", "--out", "{out}"], 2, "--seeds"),
    ("seeds-backwards", [G, "--checkpoint", "digits-mspe", "--seeds", "5-2", "--out", "{out}"], 2, "--seeds"),
    ("max-memory-nan", [G, "--checkpoint", "digits-mspe", "--max-memory", "nan", "--out", "{out}"], 2,
     "--max-memory"),
    ("tile-zero", [G, "--checkpoint", "digits-mspe", "--tile", "0", "--out", "{out}"], 2, "--tile"),
    ("steps-zero", [G, "--checkpoint", "digits-ddpm", "--steps", "0", "--out", "{out}"], 2, "--steps"),
    ("steps-beyond-T", [G, "--checkpoint", "digits-ddpm", "--steps", "100000", "--out", "{out}"], 2, "--steps"),
    ("eval-samples-zero", [E, "--checkpoint", "digits-mspe", "--num-samples", "0", *EV], 2, "--num-samples"),
    ("eval-samples-float", [E, "--checkpoint", "digits-mspe", "--num-samples", "1.5", *EV], 2, "--num-samples"),
    ("eval-step-nan", [E, "--checkpoint", "digits-mspe", "--metrics", "shift-consistency", "--step", "nan"], 2,
     "--step"),
    ("eval-region-negative", [E, "--checkpoint", "digits-mspe", "--region", "-1,0,4,4", *EV], 2, "--region"),
    ("eval-region-outside", [E, "--checkpoint", "digits-mspe", "--metrics", "shift-consistency",
                             "--region", "100,100,4,4", "--shift-samples", "2"], 2, "is not inside the 32x32 canvas"),
    ("eval-unknown-metric", [E, "--checkpoint", "digits-mspe", "--metrics", "fid,bogus"], 2, "bogus"),
    ("eval-no-metrics", [E, "--checkpoint", "digits-mspe", "--metrics", ","], 2, "metric"),
    ("video-fps-inf", ["video", "--checkpoint", "digits-mspe", "--fps", "inf", "--out", "{out}/v.gif"], 2, "--fps"),
    ("video-zoom-range-zero", ["video", "--checkpoint", "digits-mspe", "--kind", "zoom", "--zoom-range", "0,2",
                               "--out", "{out}/v.gif"], 2, "zoom"),
    ("video-colors-1", ["video", "--checkpoint", "digits-mspe", "--colors", "1", "--out", "{out}/v.gif"], 2,
     "colors"),
    ("video-upscale-huge", ["video", "--checkpoint", "digits-mspe", "--upscale", "100000", "--frames", "2",
                            "--out", "{out}/v.gif"], 2, "--upscale"),
    ("video-frames-huge", ["video", "--checkpoint", "digits-mspe", "--frames", "1000000000",
                           "--out", "{out}/v.gif"], 2, "--frames"),
    ("sticking-frames-1", ["sticking", "--checkpoint", "digits-mspe", "--frames", "1", "--out", "{out}/s.png"], 2,
     "frames"),
    ("edit-strength-nan", ["edit", "--checkpoint", "digits-mspe", "--strengths", "0,nan", "--out", "{out}"], 2,
     "finite"),
    ("edit-direction-out-of-range", ["edit", "--checkpoint", "digits-mspe", "--direction", "9999",
                                     "--out", "{out}"], 2, "--direction"),
    ("edit-layers-out-of-range", ["edit", "--checkpoint", "digits-mspe", "--layers", "99", "--list", "2"], 2,
     "--layers"),
    ("mix-layers-out-of-range", ["mix", "--checkpoint", "digits-mspe", "--layers", "99", "--out", "{out}/m.png"], 2,
     "--layers"),
    ("project-digit-negative", ["project", "--checkpoint", "digits-mspe", "--digit", "-1", "--out", "{out}"], 2,
     "--digit"),
    ("project-digit-huge", ["project", "--checkpoint", "digits-mspe", "--digit", "99999", "--out", "{out}"], 2,
     "--digit"),
    ("project-target-zoom-3", ["project", "--checkpoint", "digits-mspe", "--digit", "1", "--target-zoom", "3",
                               "--out", "{out}"], 2, "--target-zoom"),
    ("project-feature-weight-inf", ["project", "--checkpoint", "digits-mspe", "--digit", "1", "--feature-weight",
                                    "inf", "--out", "{out}"], 2, "finite"),
    ("project-grid-count-negative", ["project", "--experiment", "--grid-count", "-1", "--out", "{out}"], 2,
     "--grid-count"),
    ("project-experiment-bad-part", ["project", "--experiment", "--parts", "bogus", "--out", "{out}"], 2, "bogus"),
    ("reconstruct-times-garbage", ["reconstruct", "--checkpoint", "digits-ddpm", "--times", "a,b", "--out", "{out}"],
     2, "--times"),
    ("reconstruct-times-beyond-T", ["reconstruct", "--checkpoint", "digits-ddpm", "--times", "5000",
                                    "--out", "{out}"], 2, "--times"),
    ("reconstruct-times-negative", ["reconstruct", "--checkpoint", "digits-ddpm", "--times", "-5", "--out", "{out}"],
     2, "--times"),
    ("demo-minutes-nan", ["demo", "--minutes", "nan", "--out", "{out}"], 2, "--minutes"),
    ("report-fid-samples-neg", ["report", "--checkpoint", "digits-mspe", "--fid-samples", "-3", "--out", "{out}"], 2,
     "--fid-samples"),
    ("study-unknown-finding", ["study", "f9", "--out", "{out}"], 2, "f9"),
    ("study-model-missing", ["study", "f1", "--model", "digits-mspe={root}/nothing", "--out", "{out}"], 2,
     "no checkpoint at"),
    ("cips-unknown-part", ["cips", "bogus", "--out", "{out}"], 2, "bogus"),
    # ---- --set and training --------------------------------------------------------------------
    ("set-lr-nan", ["train", "--preset", "digits-mspe", "--set", "train.lr=NaN", "--out", "{out}"], 2, "finite"),
    ("set-lr-inf", ["train", "--preset", "digits-mspe", "--set", "train.lr=Infinity", "--out", "{out}"], 2, "finite"),
    ("set-lr-1e400", ["train", "--preset", "digits-mspe", "--set", "train.lr=1e400", "--out", "{out}"], 2, "finite"),
    ("set-batch-zero", ["train", "--preset", "digits-mspe", "--set", "train.batch_size=0", "--out", "{out}"], 2,
     "batch_size"),
    ("set-batch-huge", ["train", "--preset", "digits-mspe", "--set", "train.batch_size=1000000000000",
                        "--out", "{out}"], 2, "batch_size"),
    ("set-resolution-negative", ["train", "--preset", "digits-mspe", "--set", "model.resolution=-16",
                                 "--out", "{out}"], 2, "resolution"),
    ("set-resolution-huge", ["train", "--preset", "digits-mspe", "--set", "model.resolution=1048576",
                             "--set", "discriminator.resolution=1048576", "--out", "{out}"], 2, "resolution"),
    ("set-channels-string", ["train", "--preset", "digits-mspe", "--set", "model.channel_max=lots",
                             "--out", "{out}"], 2, "channel_max"),
    ("set-unknown-field", ["train", "--preset", "digits-mspe", "--set", "model.bogus=1", "--out", "{out}"], 2,
     "unknown field"),
    ("set-no-equals", ["train", "--preset", "digits-mspe", "--set", "train.lr", "--out", "{out}"], 2, "key=value"),
    ("set-snapshot-negative", ["train", "--preset", "digits-mspe", "--set", "train.snapshot_kimg=-1",
                               "--out", "{out}"], 2, "snapshot_kimg"),
    ("set-fid-samples-few", ["train", "--preset", "digits-mspe", "--set", "train.fid_samples=5",
                             "--out", "{out}"], 2, "train.fid_samples must be 0 (off) or in [16"),
    ("set-fid-samples-singan", ["train", "--preset", "singan-pad", "--set", "train.fid_samples=100",
                                "--out", "{out}"], 2, "a SinGAN learns one image"),
    ("kimg-nan", ["train", "--preset", "digits-mspe", "--kimg", "nan", "--out", "{out}"], 2, "--kimg"),
    ("kimg-huge", ["train", "--preset", "digits-mspe", "--kimg", "1e308", "--out", "{out}"], 2, "kimg"),
    ("minutes-zero", ["train", "--preset", "digits-mspe", "--minutes", "0", "--out", "{out}"], 2, "--minutes"),
    ("seed-huge", ["train", "--preset", "digits-mspe", "--seed", "99999999999999999999999", "--out", "{out}"], 2,
     "--seed"),
    ("preset-unknown", ["train", "--preset", "bogus", "--out", "{out}"], 2, "bogus"),
    ("train-no-preset", ["train", "--out", "{out}"], 2, "--preset"),
    ("train-data-missing", ["train", "--preset", "digits-mspe", "--data", "{root}/nothing", "--out", "{out}"], 2,
     "not found"),
    ("train-data-not-zip", ["train", "--preset", "digits-mspe", "--data", "{notzip.zip}", "--out", "{out}"], 2,
     "zip"),
    ("train-data-traversal-zip", ["train", "--preset", "digits-mspe", "--data", "{traversal.zip}", "--out", "{out}"],
     2, "unsafe"),
    ("train-data-bomb", ["train", "--preset", "singan-pad", "--data", "{bomb.png}", "--out", "{out}"], 2, "pixels"),
    ("train-data-megabomb", ["train", "--preset", "singan-pad", "--data", "{megabomb.png}", "--out", "{out}"], 2,
     "pixels"),
    ("train-data-text-as-image", ["train", "--preset", "singan-pad", "--data", "{notimage.png}", "--out", "{out}"],
     2, "cannot read image"),
    ("resume-missing", ["train", "--resume", "{root}/nothing"], 2, "no checkpoint at"),
    ("resume-corrupt", ["train", "--resume", "{corruptrun}"], 2, "is corrupt"),
    ("resume-a-file", ["train", "--resume", "{bitflip.safetensors}"], 2, "takes a run directory"),
    ("resume-exported", ["train", "--resume", "{exported.safetensors}"], 2, "takes a run directory"),
    ("resume-no-step", ["train", "--resume", "{nostep}"], 2, "no training state"),
    ("resume-with-set", ["train", "--resume", "{run}", "--set", "train.lr=1"], 2, "--resume"),
    ("resume-kimg-shorter", ["train", "--resume", "{run}", "--kimg", "0.001"], 2, "shorter"),
    ("resume-complete-ok", ["train", "--resume", "{run}"], 0, ""),
    # ---- outputs that would destroy or cannot be written --------------------------------------
    ("eval-out-checkpoint", [E, "--checkpoint", "{run}", *EV, "--out", "{run}/" + CHECKPOINT_NAME], 2, ".jsonl"),
    ("eval-out-foreign-jsonl", [E, "--checkpoint", "{run}", *EV, "--out", "{notes.jsonl}"], 2, "JSON lines"),
    ("eval-out-unwritable", [E, "--checkpoint", "{run}", *EV, "--out", "{afile}/r.jsonl"], 2, "cannot write"),
    ("train-out-checkpoint", ["train", "--preset", "digits-mspe", "--out", "{run}/" + CHECKPOINT_NAME], 2,
     "is a file"),
    ("train-out-existing-run", ["train", "--preset", "digits-mspe", "--out", "{run}"], 2, "already holds a run"),
    ("train-out-file", ["train", "--preset", "digits-mspe", "--out", "{notes.txt}"], 2, "is a file"),
    ("train-out-unwritable", ["train", "--preset", "digits-mspe", "--out", "{afile}/run"], 2, "cannot write"),
    ("train-out-proc", ["train", "--preset", "digits-mspe", "--out", "/proc/posgen-run"], 2, "cannot write"),
    ("gen-out-checkpoint", [G, "--checkpoint", "{run}", "--out", "{run}/" + CHECKPOINT_NAME], 2, "is a file"),
    ("gen-out-notes", [G, "--checkpoint", "{run}", "--out", "{notes.txt}"], 2, "is a file"),
    ("gen-out-png-over-text", [G, "--checkpoint", "{run}", "--out", "{notimage.png}"], 2, "not a PNG"),
    ("gen-out-unwritable", [G, "--checkpoint", "{run}", "--out", "{afile}/imgs"], 2, "cannot write"),
    ("gen-out-png-unwritable", [G, "--checkpoint", "{run}", "--out", "{afile}/x.png"], 2, "cannot write"),
    ("mix-out-checkpoint", ["mix", "--checkpoint", "{run}", "--out", "{run}/" + CHECKPOINT_NAME], 2, ".png"),
    ("video-out-checkpoint", ["video", "--checkpoint", "{run}", "--out", "{run}/" + CHECKPOINT_NAME], 2, ".gif"),
    ("sticking-out-checkpoint", ["sticking", "--checkpoint", "{run}", "--out", "{run}/" + CHECKPOINT_NAME], 2,
     ".png"),
    ("project-out-file", ["project", "--checkpoint", "{run}", "--digit", "1", "--out", "{notes.txt}"], 2,
     "is a file"),
    ("edit-out-file", ["edit", "--checkpoint", "{run}", "--out", "{notes.txt}"], 2, "is a file"),
    ("report-out-file", ["report", "--checkpoint", "{run}", "--out", "{notes.txt}"], 2, "is a file"),
    ("report-out-checkpoint", ["report", "--checkpoint", "{run}", "--out", "{run}/" + CHECKPOINT_NAME], 2,
     "is a file"),
    ("study-out-file", ["study", "f1", "--out", "{notes.txt}"], 2, "is a file"),
    ("cips-out-file", ["cips", "fid", "--out", "{notes.txt}"], 2, "is a file"),
    ("demo-out-file", ["demo", "--out", "{notes.txt}"], 2, "is a file"),
    ("reconstruct-out-file", ["reconstruct", "--checkpoint", "digits-ddpm", "--out", "{notes.txt}"], 2, "is a file"),
    # ---- images and latents given to apps -------------------------------------------------------
    ("project-image-bomb", ["project", "--checkpoint", "digits-mspe", "--image", "{bomb.png}", "--out", "{out}"], 2,
     "pixels"),
    ("project-image-megabomb", ["project", "--checkpoint", "digits-mspe", "--image", "{megabomb.png}",
                                "--out", "{out}"], 2, "pixels"),
    ("project-image-text", ["project", "--checkpoint", "digits-mspe", "--image", "{notimage.png}", "--out", "{out}"],
     2, "cannot read image"),
    ("project-image-missing", ["project", "--checkpoint", "digits-mspe", "--image", "{root}/no.png", "--out",
                               "{out}"], 2, "no.png"),
    ("edit-latent-pickle", ["edit", "--checkpoint", "digits-mspe", "--latent", "{latent-pickle.safetensors}",
                            "--out", "{out}"], 2, "latent"),
    ("edit-latent-shape", ["edit", "--checkpoint", "digits-mspe", "--latent", "{latent-shape.safetensors}",
                           "--out", "{out}"], 2, "shape"),
    ("eval-data-bomb-zip", [E, "--real-vs-real", "--data", "{bombs.zip}", "--metrics", "swd", "--num-samples", "4"],
     2, "at least 8 real images"),
    # ---- the listing commands ------------------------------------------------------------------
    ("presets-extra-arg", ["presets", "--bogus"], 2, "unrecognized"),
    ("pretrained-ok", ["pretrained"], 0, ""),
    ("no-command", [], 2, "required"),
    ("unknown-command", ["bogus"], 2, "invalid choice"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, trained_run):
    root = tmp_path_factory.mktemp("hostile")
    return build_world(root, trained_run)


def _expand(argv: list[str], world: dict[str, str], out: str) -> list[str]:
    return [re.sub(r"\{([^}]+)\}", lambda m: out if m.group(1) == "out" else world[m.group(1)], a) for a in argv]


def run_case(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # main never exits itself: argparse must not either
        pytest.fail(f"SystemExit({e.code}) escaped main")
    except BaseException as e:  # a traceback
        pytest.fail(f"{type(e).__name__} escaped main: {e}")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,code,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input(argv, code, message, world, tmp_path, capsys):
    root = Path(world["root"])
    before = _hashes(root)
    rc, out, err = run_case(_expand(argv, world, str(tmp_path / "out")), capsys)
    assert "Traceback" not in out + err
    assert rc == code, err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("posgen: error: "), err
        assert message in lines[0], lines[0]
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "wrote output on refusal"
    assert _hashes(root) == before, "a watched file changed"
    assert not Path(world["PWNED"]).exists(), "a pickle was unpickled"


def test_the_corpus_is_large_and_its_names_unique():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
