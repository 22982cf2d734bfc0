"""MNIST: the IDX file format, a checksum-verified downloader (urllib only) and a loader."""
from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posgen.errors import DataError
from posgen.download import DownloadError, Opener, cache_root, fetch

__all__ = [
    "IDX_DTYPES",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "default_mnist_root",
    "download_mnist",
    "load_mnist",
    "read_idx",
    "write_idx",
]

PathLike = str | os.PathLike

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

# The four standard files and their MD5 checksums (the values torchvision's MNIST dataset verifies).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# Base URLs tried in order; a file's URL is base + file name.
MNIST_MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]


# ----------------------------------------------------------------------------------------------- IDX


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not, detected by magic bytes) into a native-endian numpy array."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror or e}") from e
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"corrupt gzip data in IDX file {path}: {' '.join(str(e).split())}") from e
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"not an IDX file (bad magic number): {path}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataError(f"unknown IDX data type code 0x{code:02X} in {path}")
    dtype = IDX_DTYPES[code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"truncated IDX file {path}: header needs {header} bytes, file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have != need:
        what = "truncated" if have < need else "wrong length for"
        raise DataError(f"{what} IDX file {path}: shape {tuple(shape)} needs {need} data bytes, found {have}")
    arr = np.frombuffer(data, dtype=dtype, offset=header, count=need // dtype.itemsize)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))  # copy: writable, native byte order


def write_idx(path: PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file; gzip it when `compress` (default: when the name ends in .gz)."""
    path = Path(path)
    arr = np.asarray(array)
    for code, dt in IDX_DTYPES.items():
        if arr.dtype.kind == dt.kind and arr.dtype.itemsize == dt.itemsize:
            break
    else:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    if arr.ndim > 255:
        raise ValueError("IDX supports at most 255 dimensions")
    payload = struct.pack(f">BBBB{arr.ndim}I", 0, 0, code, arr.ndim, *arr.shape)
    payload += np.ascontiguousarray(arr, dtype=dt).tobytes()
    if compress if compress is not None else path.suffix.lower() == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


# ------------------------------------------------------------------------------------------ download


def default_mnist_root() -> Path:
    """`$POSGEN_CACHE/mnist` if POSGEN_CACHE is set, else `~/.cache/posgen/mnist`."""
    return cache_root() / "mnist"


def _resolve_root(root: PathLike | None) -> Path:
    return default_mnist_root() if root is None else Path(root).expanduser()


def download_mnist(
    root: PathLike | None = None,
    *,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
    opener: Opener | None = None,
) -> Path:
    """Download the missing MNIST files into `root` (default: `default_mnist_root()`) and return it.

    Each file is fetched from `mirrors` (default MNIST_MIRRORS) in order, MD5-checked against
    MNIST_FILES and moved into place atomically (see `posgen.download.fetch`). A file already
    present with the right checksum is kept; one with a wrong checksum is fetched again, and removed
    when that fails. `opener(url)` returns a context-managed binary stream (default: urllib with a
    60 s timeout), so tests can use file:// URLs or a local server.
    Raises DataError naming the file when no mirror delivers it intact.
    """
    root = _resolve_root(root)
    mirrors = list(MNIST_MIRRORS if mirrors is None else mirrors)
    if not mirrors:
        raise DataError(f"no MNIST mirrors configured to download into {root}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create MNIST cache directory {root}: {e.strerror or e}") from e
    for name, md5 in MNIST_FILES.items():
        urls = [(base if base.endswith("/") else base + "/") + name for base in mirrors]
        try:
            fetch(urls, root / name, md5, algorithm="md5", opener=opener, progress=progress)
        except DownloadError as e:
            with contextlib.suppress(OSError):
                (root / name).unlink()  # never leave a bad file where load_mnist would find it
            raise DataError(str(e)) from e
    return root


# -------------------------------------------------------------------------------------------- loader


def _find(root: Path, name: str) -> Path | None:
    """`name` or its un-gzipped twin (e.g. `train-images-idx3-ubyte`) inside root."""
    for cand in (root / name, root / name.removesuffix(".gz")):
        if cand.is_file():
            return cand
    return None


def load_mnist(
    root: PathLike | None = None, train: bool = True, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images uint8 [N, 28, 28] and labels uint8 [N] (train: N=60000, test: N=10000)."""
    root = _resolve_root(root)
    split = "train" if train else "t10k"
    names = (f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz")
    paths = [_find(root, n) for n in names]
    if any(p is None for p in paths):
        if not download:
            missing = ", ".join(n for n, p in zip(names, paths) if p is None)
            raise DataError(f"MNIST files missing in {root}: {missing}; pass download=True to load_mnist "
                            f"(or call posgen.data.mnist.download_mnist()) to fetch them")
        download_mnist(root)
        paths = [_find(root, n) for n in names]
    images, labels = (read_idx(p) for p in paths)  # type: ignore[arg-type]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"unexpected MNIST images in {paths[0]}: {images.dtype} {images.shape}, want uint8 [N, 28, 28]")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DataError(f"unexpected MNIST labels in {paths[1]}: {labels.dtype} {labels.shape}, "
                        f"want uint8 [{images.shape[0]}]")
    return images, labels
