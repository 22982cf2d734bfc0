"""A small digits classifier whose penultimate layer is the feature space of FID / KID /
precision-recall on (biased, shifted, rescaled) colour digits: the "Inception" of this study.

Architecture (`DigitsFeatureNet`, ~170 k parameters with the default widths):

    preprocess   [N, C, H, W] in [-1, 1], C = 1 (repeated to RGB) or 3; a non-square image is
                 padded to a square with black (-1), centred; then resized to 32x32 (bilinear,
                 antialiased when shrinking). Colour is kept.
    block 1      conv3x3(3, 16) BN ReLU, conv3x3(16, 16) BN ReLU, maxpool 2   -> 16x16
    block 2      conv3x3(16, 32) BN ReLU, conv3x3(32, 32) BN ReLU, maxpool 2  -> 8x8
    block 3      conv3x3(32, 64) BN ReLU, maxpool 2                           -> 4x4
    head         flatten (64*4*4 = 1024) -> linear(1024, 128) ReLU  = the FEATURES (128-d)
                 -> dropout (training only) -> linear(128, 10) = logits

The head flattens the 4x4 map instead of pooling it globally, so the features keep *where*
the digit is (each 8x8-pixel cell of the 32x32 input has its own weights): a generator that
puts digits in other places than the data gets a larger FID.

Training (`train_digits_extractor`): scikit-learn's 1797 8x8 glyphs, split *by glyph* into
train / held-out (20 % of each class never seen in training), every glyph rendered many times
with fresh augmentation per epoch: canvas 32, 48 or 64 (sometimes twice as wide), digit size
1/4 to the full canvas with a slight aspect jitter, any position, random hue / saturation /
brightness (white included) on black, stroke gamma, blur and noise -- then the net's own
preprocessing. Glyphs are upscaled bicubically and pasted at integer positions, exactly like
`posgen.data.digits.make_biased_digits`. The shipped weights record the held-out accuracies.
"""
from __future__ import annotations

import colorsys
import json
import math
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posgen.errors import MetricError, one_line

FORMAT = "posgen-digits-features-v1"
SHIPPED = "digits-features.safetensors"
NUM_CLASSES = 10
HELDOUT_FRACTION = 0.2
CANVAS_SIZES = (32, 48, 64)
DATA_RECIPE = (
    "sklearn load_digits, held-out 20% of glyphs per class (numpy default_rng(seed) permutation); "
    "renders: canvas {32,48,64} (p=0.1 twice as wide), digit size U(0.25,1)*canvas height, aspect "
    "jitter exp(U(-0.15,0.15)), bicubic upscale, integer position anywhere, hue U(0,1), saturation 0 "
    "(p=0.15) else U(0.4,1), value 1 (p=0.5) else U(0.45,1), stroke gamma exp(U(-0.5,0.4)), "
    "gaussian blur (p=0.3), gaussian noise std U(0,0.06) (p=0.5), black background"
)


@dataclass(frozen=True)
class DigitsNetArch:
    input_size: int = 32
    widths: tuple[int, int, int] = (16, 32, 64)
    feature_dim: int = 128

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "widths": list(self.widths), "feature_dim": self.feature_dim,
                "num_classes": NUM_CLASSES}

    @classmethod
    def from_dict(cls, d: dict) -> DigitsNetArch:
        if d.get("num_classes") != NUM_CLASSES:
            raise ValueError(f"num_classes must be {NUM_CLASSES}")
        widths = tuple(int(w) for w in d["widths"])
        if len(widths) != 3:
            raise ValueError("widths must have 3 entries")
        arch = cls(input_size=int(d["input_size"]), widths=widths, feature_dim=int(d["feature_dim"]))
        if arch.input_size % 8 or arch.input_size < 8 or min(widths) < 1 or arch.feature_dim < 1:
            raise ValueError(f"bad architecture {d}")
        return arch


def _conv(i: int, o: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class DigitsFeatureNet(nn.Module):
    """Digit classifier; `forward` returns the 128-d penultimate features (see module doc)."""

    name = "digits"

    def __init__(self, arch: DigitsNetArch | None = None, dropout: float = 0.3) -> None:
        super().__init__()
        self.arch = arch or DigitsNetArch()
        c1, c2, c3 = self.arch.widths
        s = self.arch.input_size // 8
        self.feature_dim = self.arch.feature_dim
        self.body = nn.Sequential(
            *_conv(3, c1), *_conv(c1, c1), nn.MaxPool2d(2),
            *_conv(c1, c2), *_conv(c2, c2), nn.MaxPool2d(2),
            *_conv(c2, c3), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c3 * s * s, self.feature_dim), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.feature_dim, NUM_CLASSES)
        self.training_facts: dict = {}  # filled by load_digits_extractor from the weights' metadata

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] in [-1, 1] -> [N, 3, S, S] float32 (S = input_size): 1 channel repeated to
        RGB, padded to a square with black (centred), resized bilinearly (antialiased)."""
        if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] < 1 or images.shape[3] < 1:
            raise MetricError(f"digits features need images [N, 1 or 3, H, W], got {list(images.shape)}")
        x = images.to(torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[2], x.shape[3]
        if h != w:
            side = max(h, w)
            top, left = (side - h) // 2, (side - w) // 2
            x = F.pad(x, (left, side - w - left, top, side - h - top), value=-1.0)
        size = self.arch.input_size
        if x.shape[2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=x.shape[2] > size)
        return x.contiguous()

    def features_of(self, x: torch.Tensor) -> torch.Tensor:
        """Features of already preprocessed images [N, 3, S, S]."""
        return self.body(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_of(self.preprocess(images)).float()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward(images)))


# ----------------------------------------------------------------------------- loading

def shipped_weights() -> Path:
    return Path(str(resources.files("posgen") / "assets" / SHIPPED))



def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (tensors, parsed metadata) of a digits-features file; MetricError when unusable."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if not p.is_file():
        raise MetricError(f"no digits feature weights at {p} (train them with scripts/train_digits_extractor.py)")
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise MetricError(f"cannot read digits feature weights {p}: {one_line(e)}") from None
    if raw.get("format") != FORMAT:
        raise MetricError(f"{p} is not a digits feature weights file (format {raw.get('format')!r}, want {FORMAT!r})")
    from posgen.checkpoint import tensor_digest

    if "sha256" in raw and tensor_digest(tensors) != raw["sha256"]:  # files written before checksums have none
        raise MetricError(f"digits feature weights {p} are corrupt: their tensors do not match their SHA-256")
    try:
        meta = {"arch": json.loads(raw["arch"]), "training": json.loads(raw["training"])}
    except (KeyError, json.JSONDecodeError) as e:
        raise MetricError(f"bad metadata in digits feature weights {p}: {one_line(e)}") from None
    return tensors, meta


def _check_training(meta: dict, p: Path) -> None:
    t = meta["training"]
    need = ("seed", "heldout_fraction", "heldout_glyphs", "heldout_accuracy", "data_recipe")
    missing = [k for k in need if k not in t]
    if missing:
        raise MetricError(f"digits feature weights {p} lack training facts {missing}")
    acc = t["heldout_accuracy"]
    if not isinstance(acc, (int, float)) or not 0.0 <= acc <= 1.0:
        raise MetricError(f"digits feature weights {p}: bad held-out accuracy {acc!r}")
    if t["heldout_glyphs"] != heldout_glyphs(int(t["seed"]), float(t["heldout_fraction"])).tolist():
        raise MetricError(f"digits feature weights {p}: held-out glyphs do not match seed {t['seed']}")


def load_digits_extractor(device: str | torch.device = "cpu", weights: str | Path | None = None) -> DigitsFeatureNet:
    """The digits feature network in eval mode, from the shipped weights or an explicit file."""
    p = Path(weights).expanduser() if weights is not None else shipped_weights()
    tensors, meta = read_weights(p)
    try:
        arch = DigitsNetArch.from_dict(meta["arch"])
    except (KeyError, TypeError, ValueError) as e:
        raise MetricError(f"bad architecture in digits feature weights {p}: {one_line(e)}") from None
    _check_training(meta, p)
    net = DigitsFeatureNet(arch)
    want = net.state_dict()
    if set(tensors) != set(want) or any(tensors[k].shape != want[k].shape for k in want):
        raise MetricError(f"digits feature weights {p} do not fit the architecture {arch.to_dict()}")
    net.load_state_dict({k: v.to(want[k].dtype) for k, v in tensors.items()})
    net.training_facts = meta["training"]
    return net.to(device).eval().requires_grad_(False)


def save_weights(net: DigitsFeatureNet, path: str | Path, training: dict, half: bool = True) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu().contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v
    from posgen.checkpoint import tensor_digest
    from posgen.files import atomic_write

    meta = {"format": FORMAT, "arch": json.dumps(net.arch.to_dict()), "training": json.dumps(training),
            "sha256": tensor_digest(tensors)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def half_rounded(net: DigitsFeatureNet) -> DigitsFeatureNet:
    """A copy whose floating tensors went through fp16 (what the shipped file holds)."""
    out = DigitsFeatureNet(net.arch)
    out.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in net.state_dict().items()})
    return out.eval()


# ----------------------------------------------------------------------------- data

def load_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: (glyphs float32 [1797, 8, 8] in [0, 1], labels int64)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def heldout_glyphs(seed: int = 0, fraction: float = HELDOUT_FRACTION) -> np.ndarray:
    """Sorted indices (load_digits order) of the glyphs never seen in training: round(fraction *
    n_c) of each class c, chosen by a numpy default_rng(seed) permutation per class."""
    _, labels = load_glyphs()
    rng = np.random.default_rng(seed)
    out = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        out.append(rng.permutation(idx)[: round(fraction * len(idx))])
    return np.sort(np.concatenate(out))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable gaussian blur of [N, C, H, W] with zero padding, as two small matrix products."""
    def matrix(n: int) -> torch.Tensor:
        t = torch.arange(n, dtype=torch.float32)
        k = torch.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
        r = max(1, math.ceil(2.5 * sigma))
        k = k * ((t[:, None] - t[None, :]).abs() <= r)
        return k / k.sum(1, keepdim=True).max()  # interior rows sum to 1; border rows lose the padding's share

    return matrix(x.shape[2]) @ x @ matrix(x.shape[3]).T


def _colors(rng: np.random.Generator, n: int) -> np.ndarray:
    hue = rng.uniform(0, 1, n)
    sat = np.where(rng.uniform(0, 1, n) < 0.15, 0.0, rng.uniform(0.4, 1.0, n))
    val = np.where(rng.uniform(0, 1, n) < 0.5, 1.0, rng.uniform(0.45, 1.0, n))
    return np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue, sat, val)], dtype=np.float32)


def render_digits(glyphs: np.ndarray, rng: np.random.Generator, net: DigitsFeatureNet,
                  augment: bool = True) -> torch.Tensor:
    """Render glyphs [M, 8, 8] in [0, 1] with random canvas / size / place / colour (see the
    module doc) and pass them through `net.preprocess`: -> [M, 3, S, S] in (about) [-1, 1]."""
    m = len(glyphs)
    base = rng.choice(CANVAS_SIZES, m)
    wide = rng.uniform(0, 1, m) < 0.1
    canvas_w = np.where(wide, 2 * base, base)
    size = rng.uniform(0.25, 1.0, m) * base
    aspect = np.exp(rng.uniform(-0.15, 0.15, m))
    gh = np.clip(np.round(size * aspect), 4, base).astype(int)
    gw = np.clip(np.round(size / aspect), 4, canvas_w).astype(int)
    y0 = (rng.uniform(0, 1, m) * (base - gh + 1)).astype(int)
    x0 = (rng.uniform(0, 1, m) * (canvas_w - gw + 1)).astype(int)
    colors = torch.from_numpy(_colors(rng, m))
    gamma = np.exp(rng.uniform(-0.5, 0.4, m)) if augment else np.ones(m)
    blur = np.where(rng.uniform(0, 1, m) < 0.3, rng.choice([0.4, 0.6, 0.8], m), 0.0) if augment else np.zeros(m)
    noise = np.where(rng.uniform(0, 1, m) < 0.5, rng.uniform(0, 0.06, m), 0.0) if augment else np.zeros(m)
    g_all = torch.from_numpy(glyphs.astype(np.float32))[:, None]
    gamma_t = torch.from_numpy(gamma.astype(np.float32))[:, None, None, None]
    out = torch.empty(m, 3, net.arch.input_size, net.arch.input_size)
    pairs = gh * 1000 + gw
    for h in CANVAS_SIZES:
        for is_wide in (False, True):
            sel = np.flatnonzero((base == h) & (wide == is_wide))
            if len(sel) == 0:
                continue
            w = 2 * h if is_wide else h
            flat = torch.zeros(len(sel) * h * w, 3)  # channels-last pixels, for a batched paste
            for pair in np.unique(pairs[sel]):
                j = np.flatnonzero(pairs[sel] == pair)
                i = torch.from_numpy(sel[j])
                ph, pw = int(pair // 1000), int(pair % 1000)
                # upscale (bicubic, like make_biased_digits), stroke gamma, colour; paste
                g = F.interpolate(g_all[i], size=(ph, pw), mode="bicubic", align_corners=False).clamp(0, 1) ** gamma_t[i]
                g = g[:, 0, :, :, None] * colors[i][:, None, None, :]
                rows = torch.from_numpy(j * h + y0[sel[j]])[:, None] + torch.arange(ph)
                cols = torch.from_numpy(x0[sel[j]])[:, None] + torch.arange(pw)
                flat.index_copy_(0, (rows[:, :, None] * w + cols[:, None, :]).reshape(-1), g.reshape(-1, 3))
            canvas = flat.view(len(sel), h, w, 3).permute(0, 3, 1, 2)
            canvas = canvas.mul(255).round_().div_(127.5).sub_(1)  # uint8-like, like real images
            out[torch.from_numpy(sel)] = net.preprocess(canvas)
    # blur and noise at the network's resolution (sigma in input pixels; noise std in [0, 1] units)
    for s in np.unique(blur):
        if s > 0:
            t = torch.from_numpy(np.flatnonzero(blur == s))
            out[t] = gaussian_blur(out[t] + 1, float(s)) - 1
    t = torch.from_numpy(np.flatnonzero(noise > 0))
    if len(t):
        nz = torch.from_numpy(2 * noise[t.numpy()].astype(np.float32))[:, None, None, None]
        out[t] = (out[t] + nz * torch.from_numpy(rng.standard_normal((len(t), *out.shape[1:]), dtype=np.float32))).clamp(-1, 1)
    return out


def biased_digits_sets(heldout: np.ndarray) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The exact biased-digits images (default config; 64x64 with digits in the top-left 32x32)
    of the held-out glyphs: name -> (images [-1, 1], labels)."""
    from posgen.data.digits import BiasedDigitsConfig, make_biased_digits

    out = {}
    for name, cfg in (("biased32", BiasedDigitsConfig()),
                      ("biased64", BiasedDigitsConfig(canvas=(64, 64), region=(0, 0, 32, 32)))):
        images, labels = make_biased_digits(cfg)
        keep = torch.from_numpy(np.flatnonzero(np.isin(np.arange(len(images)) // cfg.copies, heldout)))
        out[name] = (images[keep].float() / 127.5 - 1, labels[keep])
    return out


@torch.no_grad()
def accuracy(net: DigitsFeatureNet, x: torch.Tensor, y: torch.Tensor, preprocessed: bool = False,
             batch: int = 512) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        f = net.features_of(xb) if preprocessed else net(xb)
        correct += int((net.classifier(f).argmax(1) == y[i:i + batch]).sum())
    return correct / max(1, len(x))


def heldout_render_set(net: DigitsFeatureNet, seed: int, heldout: np.ndarray, renders: int = 10,
                       eval_seed: int = 12345) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed evaluation set: every held-out glyph rendered `renders` times (seeded)."""
    glyphs, labels = load_glyphs()
    idx = np.repeat(heldout, renders)
    rng = np.random.default_rng([eval_seed, seed])
    return render_digits(glyphs[idx], rng, net), torch.from_numpy(labels[idx])


# ----------------------------------------------------------------------------- training

def train_digits_extractor(seed: int = 0, epochs: int = 16, renders_per_epoch: int = 16, batch_size: int = 128,
                           lr: float = 3e-3, weight_decay: float = 5e-4, threads: int | None = 1,
                           eval_renders: int = 10, arch: DigitsNetArch | None = None,
                           progress: bool = True) -> tuple[DigitsFeatureNet, dict]:
    """Train the feature net from scratch (seeded; deterministic on CPU for a fixed thread
    count). -> (model in eval mode, facts) where facts holds the held-out accuracies:
    `heldout_accuracy` (renders of the held-out glyphs, `eval_renders` each, fixed seed) and
    `biased32_accuracy` / `biased64_accuracy` (the exact biased-digits images of those glyphs)."""
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    glyphs, labels = load_glyphs()
    heldout = heldout_glyphs(seed)
    train_idx = np.setdiff1d(np.arange(len(glyphs)), heldout)
    net = DigitsFeatureNet(arch)
    x_eval, y_eval = heldout_render_set(net, seed, heldout, eval_renders)
    per_epoch = len(train_idx) * renders_per_epoch
    steps_per_epoch = per_epoch // batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    t0 = time.time()
    bar = tqdm(total=epochs * steps_per_epoch, desc="digits features", unit="step", disable=not progress)
    history = []
    for epoch in range(epochs):
        idx = rng.permutation(np.repeat(train_idx, renders_per_epoch))
        x = render_digits(glyphs[idx], rng, net)
        y = torch.from_numpy(labels[idx])
        net.train()
        total, n = 0.0, 0
        for s in range(steps_per_epoch):
            xb, yb = x[s * batch_size:(s + 1) * batch_size], y[s * batch_size:(s + 1) * batch_size]
            loss = F.cross_entropy(net.classifier(net.dropout(net.features_of(xb))), yb, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
            bar.update(1)
        acc = accuracy(net, x_eval, y_eval, preprocessed=True)
        history.append({"epoch": epoch + 1, "loss": round(total / n, 4), "heldout_accuracy": round(acc, 4)})
        bar.set_postfix(loss=f"{total / n:.3f}", heldout=f"{acc:.4f}")
    bar.close()
    net.eval()
    facts = {
        "seed": seed, "epochs": epochs, "renders_per_epoch": renders_per_epoch, "batch_size": batch_size,
        "lr": lr, "weight_decay": weight_decay, "threads": threads, "train_seconds": round(time.time() - t0, 1),
        "train_glyphs": len(train_idx), "heldout_fraction": HELDOUT_FRACTION,
        "heldout_glyphs": heldout.tolist(), "eval_renders": eval_renders, "eval_images": len(x_eval),
        "data_recipe": DATA_RECIPE, "history": history,
    }
    facts.update(evaluate(net, seed, heldout, x_eval, y_eval))
    return net, facts


def evaluate(net: DigitsFeatureNet, seed: int, heldout: np.ndarray, x_eval: torch.Tensor,
             y_eval: torch.Tensor) -> dict:
    out = {"heldout_accuracy": round(accuracy(net, x_eval, y_eval, preprocessed=True), 5)}
    for name, (x, y) in biased_digits_sets(heldout).items():
        out[f"{name}_accuracy"] = round(accuracy(net, x, y), 5)
        out[f"{name}_images"] = len(x)
    return out
