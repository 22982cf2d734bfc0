"""The FID Inception-v3: TensorFlow's 2015-12-05 ImageNet graph as ported to PyTorch by pytorch-fid.

The layout is torchvision's Inception3 with a 1008-way classifier and no aux head, so the state
dict keys are torchvision's (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch5x5_1.bn.running_var`,
..., `fc.weight` [1008, 2048]). It differs from torchvision's network where TF's graph does: the
3x3 average pools of the A, C and first E blocks leave padded zeros out of the mean, and the last
E block (Mixed_7c) max-pools its pool branch. The features are the 2048-d "pool3" activations
(global average over Mixed_7c), the ones FID, KID and precision/recall are computed from.

Preprocessing follows pytorch-fid: images in [-1, 1] (pytorch-fid maps [0, 1] there first; ours
already are), one channel repeated to three, bilinearly resized to 299x299 (align_corners=False).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from posgen.download import DownloadError, cache_root, fetch, file_digest
from posgen.errors import MetricError

__all__ = [
    "WEIGHTS_ENV",
    "WEIGHTS_NAME",
    "WEIGHTS_SHA256",
    "WEIGHTS_URL",
    "FIDInceptionV3",
    "default_weights_path",
    "load_inception",
    "resolve_weights",
]

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
# Full SHA-256 of that file (the name carries its first 8 hex digits, torch.hub style).
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_ENV = "POSGEN_INCEPTION_WEIGHTS"
INPUT_SIZE = 299


# ------------------------------------------------------------------------------------------ layers


class ConvBN(nn.Module):
    """torchvision's BasicConv2d: conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3 / 1 SAME average pool: padded zeros are not counted in the mean."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class InceptionA(nn.Module):
    """Mixed_5b-5d, 35x35: cin -> 64 + 64 + 96 + pool_features channels."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch5x5_1, self.branch5x5_2),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionB(nn.Module):
    """Mixed_6a, 35x35 -> 17x17: cin -> 384 + 96 + cin channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    """Mixed_6b-6e, 17x17: cin -> 4 x 192 channels through factorised 1x7 / 7x1 convolutions."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = {"kernel": (1, 7), "padding": (0, 3)}, {"kernel": (7, 1), "padding": (3, 0)}
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, **row)
        self.branch7x7_3 = ConvBN(c7, 192, **col)
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_3 = ConvBN(c7, c7, **row)
        self.branch7x7dbl_4 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_5 = ConvBN(c7, 192, **row)
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
            _chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                   self.branch7x7dbl_5),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionD(nn.Module):
    """Mixed_7a, 17x17 -> 8x8: cin -> 320 + 192 + cin channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            _chain(x, self.branch3x3_1, self.branch3x3_2),
            _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionE(nn.Module):
    """Mixed_7b / 7c, 8x8: cin -> 320 + 2 x 384 + 2 x 384 + 192 = 2048 channels.

    The pool branch average-pools in Mixed_7b and max-pools in Mixed_7c (as TF's graph does).
    """

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = _avg_pool if pool == "avg" else _max_pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(self.pool(x)),
        ], 1)


# ----------------------------------------------------------------------------------------- network


class FIDInceptionV3(nn.Module):
    """Images [N, C, H, W] in [-1, 1] (C = 1 or 3) -> float32 pool3 features [N, 2048].

    Always in eval mode (BatchNorm uses the stored statistics), without gradients.
    """

    name = "inception"
    feature_dim = 2048
    num_classes = 1008

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)   # 299 -> 149
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)             # -> 147
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)  # -> 147, max pool -> 73
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)             # -> 73
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)            # -> 71, max pool -> 35
        self.Mixed_5b = InceptionA(192, pool_features=32)  # -> 256 x 35 x 35
        self.Mixed_5c = InceptionA(256, pool_features=64)  # -> 288 x 35 x 35
        self.Mixed_5d = InceptionA(288, pool_features=64)  # -> 288 x 35 x 35
        self.Mixed_6a = InceptionB(288)                    # -> 768 x 17 x 17
        self.Mixed_6b = InceptionC(768, c7=128)            # -> 768 x 17 x 17
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)                    # -> 1280 x 8 x 8
        self.Mixed_7b = InceptionE(1280, pool="avg")       # -> 2048 x 8 x 8
        self.Mixed_7c = InceptionE(2048, pool="max")       # -> 2048 x 8 x 8
        self.fc = nn.Linear(2048, self.num_classes)        # logits (unused by the features; kept for the weights)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        return super().train(False)  # never batch statistics: the features must not depend on the batch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Network input [N, 3, 299, 299] (TF range [-1, 1]) -> pool3 features [N, 2048]."""
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                   self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        return x.mean(dim=(2, 3))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"inception features need images [N, 1 or 3, H, W], got {list(images.shape)}")
        x = images.to(device=self.fc.weight.device, dtype=torch.float32)
        if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features(x)


# ----------------------------------------------------------------------------------------- weights


def default_weights_path() -> Path:
    """`cache_root()/weights/pt_inception-2015-12-05-6726825d.pth`."""
    return cache_root() / "weights" / WEIGHTS_NAME


def _check_sha256(path: Path) -> None:
    got = file_digest(path)
    if got != WEIGHTS_SHA256:
        raise MetricError(f"refusing Inception weights {path}: SHA-256 {got}, expected {WEIGHTS_SHA256} "
                          f"(the FID file {WEIGHTS_NAME} from {WEIGHTS_URL})")


def resolve_weights(weights: str | os.PathLike | None = None, *, verify: bool = True) -> Path:
    """The FID Inception weights file: `weights`, else $POSGEN_INCEPTION_WEIGHTS, else the cache
    file `default_weights_path()`, downloaded from WEIGHTS_URL when missing (or wrong).

    With `verify` (default) the file's SHA-256 must be WEIGHTS_SHA256; a download is always checked.
    Raises MetricError (one line) when no usable file can be had, saying where to put one.
    """
    given = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            origin = "" if weights is not None else f" (from {WEIGHTS_ENV})"
            raise MetricError(f"Inception weights file not found: {path}{origin}; it should be {WEIGHTS_NAME} "
                              f"from {WEIGHTS_URL}")
        if verify:
            _check_sha256(path)
        return path
    path = default_weights_path()
    present = path.is_file()
    if present and (not verify or file_digest(path) == WEIGHTS_SHA256):
        return path
    try:
        return fetch([WEIGHTS_URL], path, WEIGHTS_SHA256)
    except DownloadError as e:
        state = "has the wrong SHA-256" if present else "is missing"
        raise MetricError(
            f"the FID Inception weights {WEIGHTS_NAME} are needed: the cache file {path} {state} and the "
            f"download failed ({e}); download {WEIGHTS_URL} and place it at {path}, or pass "
            f"--inception-weights PATH or set {WEIGHTS_ENV}=PATH to use a copy elsewhere"
        ) from e


def _some(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _load_state(model: FIDInceptionV3, state: object, path: Path) -> None:
    """Copy `state` into `model`, refusing anything but exactly the network's tensors (BatchNorm's
    `num_batches_tracked` counters may be absent or present: they do not affect eval mode)."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MetricError(f"Inception weights {path} are not a state dict of tensors")
    state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    own = {k: v for k, v in model.state_dict().items() if not k.endswith(".num_batches_tracked")}
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    reshaped = sorted(f"{k} {list(state[k].shape)} for {list(own[k].shape)}"
                      for k in own.keys() & state.keys() if state[k].shape != own[k].shape)
    if missing or unexpected or reshaped:
        problems = [f"{label} {_some(keys)}" for label, keys in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped)) if keys]
        raise MetricError(f"Inception weights {path} do not fit the FID Inception-v3: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)


def load_inception(device: str | torch.device = "cpu", weights: str | os.PathLike | None = None, *,
                   verify: bool = True) -> FIDInceptionV3:
    """The FID Inception-v3 with its weights (see `resolve_weights`), on `device`, in eval mode."""
    path = resolve_weights(weights, verify=verify)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and format errors alike
        raise MetricError(f"cannot read Inception weights {path}: {' '.join(str(e).split())}") from e
    model = FIDInceptionV3()
    _load_state(model, state, path)
    return model.to(device)
